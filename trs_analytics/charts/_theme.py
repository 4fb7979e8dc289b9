"""The look shared by every chart: state colours, chart config, units and the chart type.

State types keep the same colour in every chart. The colours are the ones the
Prefect UI uses (``ui-v2`` ``STATE_COLORS``), so a FAILED bar here looks like a
FAILED badge there.
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

import altair as alt

from trs_analytics.schema import STATE_TYPES

__all__ = [
    "CONFIG",
    "NEUTRAL",
    "STATE_COLORS",
    "AnyChart",
    "state_color",
    "state_scale",
]

#: What a chart function returns: a single view, a layer of views or small multiples.
AnyChart: TypeAlias = "alt.Chart | alt.LayerChart | alt.FacetChart | alt.VConcatChart"

#: Prefect UI colour of each state type.
STATE_COLORS: Final[dict[str, str]] = {
    "SCHEDULED": "#E08504",
    "PENDING": "#8E8093",
    "RUNNING": "#09439B",
    "PAUSED": "#726576",
    "CANCELLING": "#334863",
    "COMPLETED": "#219D4B",
    "FAILED": "#DE0529",
    "CANCELLED": "#333333",
    "CRASHED": "#EA580C",
}

#: Colours for series that are not state types (quantiles, rates), so that no such
#: series is mistaken for a state: slate, light slate, mauve, teal.
NEUTRAL: Final = ("#4C5D73", "#9AA5B4", "#B07AA1", "#76B7B2")

#: Chart configuration applied when a chart is saved or put in a report.
CONFIG: Final[dict[str, Any]] = {
    "font": "Helvetica, Arial, sans-serif",
    "background": "white",
    "padding": 12,
    "view": {"stroke": None},
    "title": {
        "fontSize": 15,
        "anchor": "start",
        "subtitleColor": "#5F6B7A",
        "subtitleFontSize": 12,
    },
    "axis": {
        "labelColor": "#3B4452",
        "titleColor": "#3B4452",
        "titleFontWeight": "normal",
        "gridColor": "#E6E9EE",
        "domainColor": "#9AA5B4",
        "tickColor": "#9AA5B4",
    },
    "legend": {"titleFontWeight": "normal", "labelColor": "#3B4452"},
    "header": {"labelFontSize": 12, "labelFontWeight": "bold", "titleFontSize": 0},
}


def state_color(state_type: str) -> str:
    """Return the colour of one state type.

    Examples:
        >>> state_color("FAILED")
        '#DE0529'
    """
    return STATE_COLORS[state_type]


def state_scale(types: tuple[str, ...] | list[str] = STATE_TYPES) -> alt.Scale:
    """Return the colour scale that maps state types to their colours, in lifecycle order.

    Args:
        types: the state types the chart's legend lists (default: all nine).

    Examples:
        >>> scale = state_scale(["COMPLETED", "FAILED"])
        >>> scale.to_dict()
        {'domain': ['COMPLETED', 'FAILED'], 'range': ['#219D4B', '#DE0529']}
    """
    ordered = [t for t in STATE_TYPES if t in types]
    return alt.Scale(domain=ordered, range=[STATE_COLORS[t] for t in ordered])


#: Name of the Altair theme with :data:`CONFIG`; ``alt.theme.enable(THEME)`` in a notebook.
THEME: Final = "trs_analytics"


@alt.theme.register(THEME, enable=False)
def _theme() -> alt.theme.ThemeConfig:
    """Altair theme: the look of saved charts and reports, for notebooks (registered, not enabled)."""
    return {"config": CONFIG}  # type: ignore[typeddict-item]
