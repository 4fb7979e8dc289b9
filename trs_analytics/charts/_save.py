"""Save any chart as PNG, SVG or self-contained HTML (offline: the Vega JS is inlined)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import vl_convert as vlc

from trs_analytics.charts._theme import CONFIG
from trs_analytics.exceptions import ConfigurationError

if TYPE_CHECKING:
    from trs_analytics.charts._theme import AnyChart

__all__ = ["ChartFormat", "chart_spec", "save_chart"]

#: The formats :func:`save_chart` writes.
ChartFormat = Literal["png", "svg", "html"]


def chart_spec(chart: AnyChart) -> dict[str, Any]:
    """Return the chart's Vega-Lite spec as a dict (data inlined), without the theme config.

    Examples:
        >>> import altair as alt
        >>> chart_spec(alt.Chart({"values": [{"a": 1}]}).mark_bar())["mark"]
        {'type': 'bar'}
    """
    spec: dict[str, Any] = chart.to_dict()
    return spec


def _format(path: Path, format: str | None) -> ChartFormat:
    name = (format or path.suffix.lstrip(".")).lower()
    if name == "png":
        return "png"
    if name == "svg":
        return "svg"
    if name in ("html", "htm"):
        return "html"
    msg = (
        f"cannot save a chart as {name or 'a file without a suffix'!r} ({path}). "
        "Hint: use a .png, .svg or .html path, or format='png'|'svg'|'html'."
    )
    raise ConfigurationError(msg)


def save_chart(
    chart: AnyChart,
    path: str | Path,
    *,
    format: ChartFormat | None = None,
    scale: float = 2.0,
) -> Path:
    """Save a chart as PNG, SVG or a self-contained HTML page, with the package's look.

    Rendering is done by vl-convert, in process: no browser and no network.
    The HTML page carries the Vega, Vega-Lite and vega-embed JavaScript
    inline, so it opens offline.

    Args:
        chart: any chart from :mod:`trs_analytics.charts` (or any Altair chart).
        path: where to write; the suffix picks the format unless ``format`` is given.
        format: ``"png"``, ``"svg"`` or ``"html"``.
        scale: pixel density of a PNG (2 gives a sharp image on most screens).

    Returns:
        The path written.

    Raises:
        ConfigurationError: the format is not png, svg or html.

    Examples:
        >>> import tempfile, altair as alt
        >>> chart = alt.Chart({"values": [{"a": 1}]}).mark_bar().encode(x="a:Q")
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     out = save_chart(chart, f"{folder}/chart.svg")
        ...     out.read_text().startswith("<svg")
        True
    """
    out = Path(path)
    kind = _format(out, format)
    spec = chart_spec(chart)
    if kind == "png":
        out.write_bytes(vlc.vegalite_to_png(spec, scale=scale, config=CONFIG))
    elif kind == "svg":
        out.write_text(vlc.vegalite_to_svg(spec, config=CONFIG), encoding="utf-8")
    else:
        html = vlc.vegalite_to_html(spec, bundle=True, config=CONFIG, renderer="svg")
        out.write_text(html, encoding="utf-8")
    return out
