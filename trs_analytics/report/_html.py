"""The report's HTML: a page template, tables and chart embeds, with the Vega JS inlined."""

from __future__ import annotations

import html
import json
from functools import cache
from typing import TYPE_CHECKING, Any

import vl_convert as vlc

if TYPE_CHECKING:
    from collections.abc import Mapping

    import polars as pl

    from trs_analytics.report._tables import Headline

__all__ = ["card", "chart_block", "javascript", "page", "script_json", "table"]

_CSS = """
:root { --ink: #1f2937; --muted: #5f6b7a; --line: #e6e9ee; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 Helvetica, Arial, sans-serif; color: var(--ink);
       background: var(--bg); }
main { max-width: 1180px; margin: 0 auto; padding: 28px 24px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 10px; }
p.meta, p.caption { color: var(--muted); margin: 0 0 14px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 12px; }
.card { background: white; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase;
               letter-spacing: .04em; }
.card .value { font-size: 24px; font-weight: bold; margin: 2px 0; }
.card .note { color: var(--muted); font-size: 12px; }
.chart { background: white; border: 1px solid var(--line); border-radius: 8px; padding: 8px;
         width: 100%; margin: 0 0 16px; overflow-x: auto; }
table { border-collapse: collapse; background: white; border: 1px solid var(--line);
        border-radius: 8px; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: normal; font-size: 12px; text-transform: uppercase; }
td a { color: #1860f2; }
td.mono, td a { font-family: ui-monospace, Menlo, monospace; font-size: 12px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.empty { color: var(--muted); font-style: italic; }
footer { color: var(--muted); font-size: 12px; margin-top: 40px; }
"""


@cache
def javascript() -> str:
    """Return the Vega, Vega-Lite and vega-embed JavaScript, bundled for a ``<script>`` tag."""
    bundle: str = vlc.javascript_bundle()  # type: ignore[call-arg]
    return bundle.replace("</script", "<\\/script")


def script_json(value: Any) -> str:
    """Serialise ``value`` as JSON that is safe inside a ``<script>`` element.

    Every ``<`` is written ``\\u003c``: no text in the data (``</script>``, or
    ``<!--<script>``, after which the HTML parser would not end the element at
    its ``</script>``) is markup to the parser, and JavaScript reads the same string.

    Examples:
        >>> script_json({"a": "</script>"})
        '{"a": "\\\\u003c/script>"}'
    """
    return json.dumps(value, default=str).replace("<", "\\u003c")


def card(headline: Headline) -> str:
    """Render one headline number as an HTML card."""
    return (
        '<div class="card">'
        f'<div class="label">{html.escape(headline.label)}</div>'
        f'<div class="value">{html.escape(headline.value)}</div>'
        f'<div class="note">{html.escape(headline.note)}</div></div>'
    )


def table(frame: pl.DataFrame, *, empty: str, links: Mapping[str, str] | None = None) -> str:
    """Render a small frame as an HTML table (numbers right-aligned); ``empty`` when it has no rows.

    ``links`` maps a column to the column holding its cells' URLs (not shown
    itself); a null URL leaves the cell plain text.

    Examples:
        >>> import polars as pl
        >>> table(pl.DataFrame({"task": ["a<b"], "runs": [3]}), empty="none")
        '<table><thead><tr><th>task</th><th>runs</th></tr></thead><tbody><tr><td>a&lt;b</td><td class="num">3</td></tr></tbody></table>'
    """
    if frame.is_empty():
        return f'<p class="empty">{html.escape(empty)}</p>'
    links = links or {}
    numeric = {name for name, dtype in frame.schema.items() if dtype.is_numeric()}
    shown = [c for c in frame.columns if c not in set(links.values())]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown)
    rows = []
    for row in frame.iter_rows(named=True):
        cells = []
        for name in shown:
            value = row[name]
            text = "-" if value is None else (f"{value:,}" if name in numeric else str(value))
            css = ' class="num"' if name in numeric else ""
            content = html.escape(text)
            url = row[links[name]] if name in links else None
            if url:
                content = (
                    f'<a href="{html.escape(url)}" target="_blank" rel="noopener">{content}</a>'
                )
            cells.append(f"<td{css}>{content}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def chart_block(index: int) -> str:
    """Return the element a chart is drawn into."""
    return f'<div class="chart" id="chart-{index}" data-chart="{index}"></div>'


#: Pixels a facet's panel leaves for its axis, axis title and the gap beside it.
FACET_ALLOWANCE = 90


def page(
    *, title: str, meta: str, body: str, specs: list[dict[str, Any]], config: dict[str, Any]
) -> str:
    """Assemble the whole page: CSS, body, the inlined JS bundle and the chart embeds.

    Charts are drawn as SVG by vega-embed; each chart's menu saves it as PNG
    or SVG. When every chart is drawn, ``<body>`` gets ``data-charts-rendered``
    (the count) and any failure is written into ``data-chart-errors``.
    """
    embed = f"""
const specs = {script_json(specs)};
const config = {script_json(config)};
const opts = {{renderer: "svg", config: config,
  actions: {{export: true, source: false, compiled: false, editor: false}}}};
// Each chart fills its card: one view (or layers) takes the card's width ("container");
// a facet, which Vega-Lite cannot size so, gets panels that share it.
const fit = (spec, el) => {{
  const room = el.clientWidth - 16, s = structuredClone(spec);
  if (s.facet && s.spec) {{
    const columns = s.facet.row && !s.facet.column ? 1 : s.columns;
    if (columns) s.spec.width = Math.max(150, Math.floor(room / columns) - {FACET_ALLOWANCE});
  }} else if (!s.hconcat && !s.vconcat && !s.concat && !s.repeat && fixHeight(s)) {{
    s.width = "container";
  }}
  return s;
}};
// A height of so many pixels per row (a step) becomes pixels: a container width needs
// autosize "fit", which Vega-Lite drops, with a warning, beside a step height.
const fixHeight = s => {{
  if (!s.height || s.height.step === undefined) return true;
  const views = s.layer || [s];
  const y = views.map(v => (v.encoding || {{}}).y).find(y => y && y.field);
  const rows = s.data && s.datasets ? s.datasets[s.data.name] : undefined;
  if (!y || !rows) return false;
  s.height = Math.max(1, new Set(rows.map(r => r[y.field])).size) * s.height.step;
  return true;
}};
Promise.allSettled(specs.map((spec, i) => {{
  const el = document.getElementById("chart-" + i);
  return vegaEmbed(el, fit(spec, el), opts);
}}))
  .then(results => {{
    const failed = results.filter(r => r.status === "rejected");
    failed.forEach(r => console.error("chart failed:", r.reason));
    document.body.dataset.chartsRendered = String(results.length - failed.length);
    document.body.dataset.chartErrors = failed.map(r => String(r.reason)).join("; ");
  }});
"""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
<script>{javascript()}</script>
</head>
<body>
<main>
<h1>{html.escape(title)}</h1>
<p class="meta">{html.escape(meta)}</p>
{body}
<footer>Written by trs_analytics. Charts: Vega-Lite, rendered in the page (no network needed);
use a chart's ⋯ menu to save it as PNG or SVG.</footer>
</main>
<script>{embed}</script>
</body>
</html>
"""
