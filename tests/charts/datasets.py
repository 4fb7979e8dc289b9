"""What a chart draws: the rows of the one inline dataset in its spec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import altair as alt


def rows_of(chart: alt.TopLevelMixin) -> list[dict[str, Any]]:
    """The one inline dataset of a chart's spec (the aggregated rows it draws).

    Examples:
        >>> import altair as alt
        >>> import polars as pl
        >>> rows_of(alt.Chart(pl.DataFrame({"x": [1, 2]})).mark_bar().encode(x="x:Q"))
        [{'x': 1}, {'x': 2}]
    """
    datasets = chart.to_dict()["datasets"]
    assert len(datasets) == 1
    rows: list[dict[str, Any]] = next(iter(datasets.values()))
    return rows
