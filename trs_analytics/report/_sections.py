"""The report as a list of sections rendered in order, with HTML escaping in one place."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trs_analytics.charts import chart_spec
from trs_analytics.report._html import card, chart_block, table

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import polars as pl

    from trs_analytics.charts import AnyChart
    from trs_analytics.report._tables import Headline

__all__ = ["Cards", "ChartSection", "Section", "TableSection", "render"]


@dataclass(frozen=True)
class Cards:
    """Headline numbers as cards."""

    heading: str
    cards: Sequence[Headline]
    caption: str = ""


@dataclass(frozen=True)
class ChartSection:
    """One chart, drawn in the page by vega-embed."""

    heading: str
    chart: AnyChart
    caption: str = ""


@dataclass(frozen=True)
class TableSection:
    """A small table; ``links`` maps a shown column to the column holding its URL."""

    heading: str
    frame: pl.DataFrame
    empty: str
    caption: str = ""
    links: Mapping[str, str] = field(default_factory=dict)


Section = Cards | ChartSection | TableSection


def _head(section: Section) -> str:
    """The heading and caption, escaped here and nowhere else."""
    caption = f'<p class="caption">{html.escape(section.caption)}</p>' if section.caption else ""
    return f"<h2>{html.escape(section.heading)}</h2>{caption}"


def render(sections: Sequence[Section]) -> tuple[str, list[dict[str, Any]]]:
    """Render the sections in order: the body HTML and the chart specs it embeds.

    Examples:
        >>> import polars as pl
        >>> body, specs = render([TableSection("A <b>", pl.DataFrame({"x": [1]}), empty="-")])
        >>> body.startswith("<h2>A &lt;b&gt;</h2><table>"), specs
        (True, [])
    """
    parts: list[str] = []
    specs: list[dict[str, Any]] = []
    for section in sections:
        if isinstance(section, Cards):
            cards = "".join(card(h) for h in section.cards)
            parts.append(f'{_head(section)}<div class="cards">{cards}</div>')
        elif isinstance(section, ChartSection):
            parts.append(_head(section) + chart_block(len(specs)))
            specs.append(chart_spec(section.chart))
        else:
            body = table(section.frame, empty=section.empty, links=section.links)
            parts.append(_head(section) + body)
    return "\n".join(parts), specs
