"""Text for people: durations, time spans and round bucket widths, each written once.

Charts, tables and the report all format through here, so that 0.0005 s reads
``0.5 ms`` everywhere and an 11-minute span is not labelled ``Nov 28`` on every
tick. Base module: it imports nothing from the package.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterator

    import polars as pl

__all__ = [
    "ROUND_WIDTHS",
    "SHORT_WIDTHS",
    "argument_text",
    "auto_every",
    "auto_period",
    "axis_time_format",
    "cli_spelling",
    "count_text",
    "duration_expr",
    "duration_text",
    "markdown_cell",
    "markdown_link",
    "missing_label",
    "seconds",
    "span_text",
    "terminal_text",
]

#: Characters Markdown gives a meaning to (links, images, emphasis, tables, HTML, code).
_MARKDOWN: Final = re.compile(r"([\\`*_{}\[\]()<>#!|~:])")

#: Round widths for time buckets and comparison periods, shortest first.
ROUND_WIDTHS: Final = (
    ("1m", timedelta(minutes=1)),
    ("5m", timedelta(minutes=5)),
    ("10m", timedelta(minutes=10)),
    ("15m", timedelta(minutes=15)),
    ("30m", timedelta(minutes=30)),
    ("1h", timedelta(hours=1)),
    ("3h", timedelta(hours=3)),
    ("6h", timedelta(hours=6)),
    ("12h", timedelta(hours=12)),
    ("1d", timedelta(days=1)),
    ("7d", timedelta(days=7)),
)

#: What a missing grouping value is called in charts and tables.
_MISSING: Final = {
    "flow_name": "(no flow)",
    "flow_run_id": "(no flow)",
    "flow_run_name": "(no flow)",
    "deployment_id": "(no deployment)",
    "deployment_name": "(no deployment)",
    "work_pool_name": "(no work pool)",
    "tags": "(no tag)",
}


def duration_text(value: timedelta | float | None) -> str | None:
    """Format a duration (a timedelta or float seconds) for a person; ``None`` stays ``None``.

    Examples:
        >>> [duration_text(s) for s in (0.0005, 0.25, 4.24, 185.0, 7500.0, 180000.0)]
        ['0.5 ms', '250 ms', '4.2 s', '3 min 5 s', '2 h 5 min', '2 d 2 h']
        >>> duration_text(timedelta(milliseconds=3)), duration_text(None)
        ('3.0 ms', None)
    """
    if value is None:
        return None
    s = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if s < 0.01:
        return f"{s * 1000:.1f} ms"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    whole = round(s)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {(whole % 3600) // 60} min"
    return f"{whole // 86400} d {(whole % 86400) // 3600} h"


def seconds(column: str | pl.Expr) -> pl.Expr:
    """Turn a Duration column into float seconds.

    Examples:
        >>> import polars as pl
        >>> from datetime import timedelta
        >>> pl.DataFrame({"d": [timedelta(milliseconds=1500)]}).select(seconds("d")).item()
        1.5
    """
    import polars as pl

    expr = pl.col(column) if isinstance(column, str) else column
    return expr.dt.total_microseconds().cast(pl.Float64) / 1e6


def duration_expr(seconds: pl.Expr) -> pl.Expr:
    """Apply :func:`duration_text` to an expression of float seconds (for small, aggregated frames).

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"s": [0.0005, 185.0, None]}).select(duration_expr(pl.col("s")))["s"].to_list()
        ['0.5 ms', '3 min 5 s', None]
    """
    import polars as pl

    return seconds.map_elements(duration_text, return_dtype=pl.String, skip_nulls=True)


#: Round bucket widths under a minute, for data that spans seconds (not comparison periods).
SHORT_WIDTHS: Final = (
    ("1s", timedelta(seconds=1)),
    ("5s", timedelta(seconds=5)),
    ("10s", timedelta(seconds=10)),
    ("15s", timedelta(seconds=15)),
    ("30s", timedelta(seconds=30)),
)


def auto_every(span: timedelta | None, *, buckets: int = 60) -> str:
    """Pick the shortest round width that cuts ``span`` into at most ``buckets`` buckets.

    A capture of seconds gets buckets of seconds: a 56-second capture in 1-minute
    buckets was drawn as two thin bars.

    Examples:
        >>> auto_every(timedelta(days=7)), auto_every(timedelta(hours=1))
        ('3h', '1m')
        >>> auto_every(timedelta(seconds=56), buckets=40), auto_every(timedelta(seconds=56))
        ('5s', '1s')
        >>> auto_every(None)
        '1h'
    """
    if span is None:
        return "1h"
    for name, width in (*SHORT_WIDTHS, *ROUND_WIDTHS):
        if span / width <= buckets:
            return name
    return ROUND_WIDTHS[-1][0]


def auto_period(span: timedelta | None) -> str:
    """Pick the longest round width that ``span`` covers at least twice (a period and the one before).

    Examples:
        >>> auto_period(timedelta(days=3)), auto_period(timedelta(minutes=11))
        ('1d', '5m')
        >>> auto_period(timedelta(seconds=45))
        '1m'
    """
    fitting = [name for name, width in ROUND_WIDTHS if span is not None and span >= 2 * width]
    return fitting[-1] if fitting else ROUND_WIDTHS[0][0]


def axis_time_format(span: timedelta | None) -> str:
    """Return the d3 time format for axis ticks over ``span``: no date on every tick of one day.

    Examples:
        >>> axis_time_format(timedelta(seconds=45)), axis_time_format(timedelta(minutes=11))
        ('%H:%M:%S', '%H:%M')
        >>> axis_time_format(timedelta(days=2)), axis_time_format(timedelta(days=30))
        ('%b %d %H:%M', '%b %d')
    """
    if span is None or span < timedelta(minutes=3):
        return "%H:%M:%S"
    if span <= timedelta(days=1):
        return "%H:%M"
    if span <= timedelta(days=7):
        return "%b %d %H:%M"
    return "%b %d"


def span_text(first: datetime, last: datetime) -> str:
    """Describe the span from ``first`` to ``last`` (UTC) at a precision that tells them apart.

    Examples:
        >>> from datetime import UTC
        >>> t = datetime(2026, 11, 28, 17, 2, 5, 123456, tzinfo=UTC)
        >>> span_text(t, t + timedelta(seconds=45))
        '2026-11-28 17:02:05 to 17:02:50 UTC (45.0 s)'
        >>> span_text(t, t + timedelta(milliseconds=40))
        '2026-11-28 17:02:05.123 to 17:02:05.163 UTC (40 ms)'
        >>> span_text(t, t + timedelta(days=3))
        '2026-11-28 17:02 to 2026-12-01 17:02 UTC (3 d 0 h)'
    """
    span = last - first
    precise = span < timedelta(seconds=10)
    clock = "%H:%M:%S" if span < timedelta(hours=1) or precise else "%H:%M"

    def fmt(t: datetime, pattern: str) -> str:
        text = t.strftime(pattern)
        return f"{text}.{t.microsecond // 1000:03d}" if precise else text

    end = clock if first.date() == last.date() else f"%Y-%m-%d {clock}"
    return f"{fmt(first, f'%Y-%m-%d {clock}')} to {fmt(last, end)} UTC ({duration_text(span)})"


def count_text(count: int, noun: str, plural: str | None = None, *, grouped: bool = True) -> str:
    """``count`` and its noun, singular or plural, with thousands separators (unless not
    ``grouped``: summary lines that scripts read keep plain digits).

    Examples:
        >>> count_text(1, "task run"), count_text(2_760, "task run"), count_text(0, "retry", "retries")
        ('1 task run', '2,760 task runs', '0 retries')
        >>> count_text(1, "file", grouped=False), count_text(1200, "file", grouped=False)
        ('1 file', '1200 files')
    """
    number = f"{count:,}" if grouped else str(count)
    return f"{number} {noun if count == 1 else plural or noun + 's'}"


#: Whether messages name command-line options (``--api-url``) rather than arguments.
_CLI_SPELLING: ContextVar[bool] = ContextVar("trs_analytics_cli_spelling", default=False)


@contextmanager
def cli_spelling() -> Iterator[None]:
    """Within this block, :func:`argument_text` names command-line options (the CLI sets it)."""
    token = _CLI_SPELLING.set(True)
    try:
        yield
    finally:
        _CLI_SPELLING.reset(token)


def argument_text(name: str, value: str | None = None) -> str:
    """How a hint names an argument: as Python passes it, or as the CLI's option.

    Examples:
        >>> argument_text("api_url", "http://127.0.0.1:4200/api"), argument_text("max_retry_wait")
        ("api_url='http://127.0.0.1:4200/api'", 'max_retry_wait=')
        >>> with cli_spelling():
        ...     argument_text("api_url", "http://127.0.0.1:4200/api"), argument_text("max_retry_wait")
        ('--api-url http://127.0.0.1:4200/api', '--max-retry-wait')
    """
    if _CLI_SPELLING.get():
        option = "--" + name.replace("_", "-")
        return option if value is None else f"{option} {value}"
    return f"{name}=" if value is None else f"{name}={value!r}"


def missing_label(column: str | None) -> str:
    """Name the group of rows whose ``column`` is missing, e.g. task runs outside any flow.

    Examples:
        >>> missing_label("flow_name"), missing_label("task_name")
        ('(no flow)', '(none)')
    """
    return _MISSING.get(column or "", "(none)")


def markdown_cell(text: object) -> str:
    r"""``text`` as plain text in a Markdown table cell: every Markdown character escaped
    (no link, image, emphasis, HTML or autolink can be made from it) and on one line.

    Examples:
        >>> markdown_cell("a | b\n![x](http://evil/p.png)")
        'a \\| b ⏎ \\!\\[x\\]\\(http\\://evil/p.png\\)'
    """
    one_line = " ⏎ ".join(str(text).splitlines())
    return _MARKDOWN.sub(r"\\\1", one_line)


def markdown_link(label: str, url: str | None) -> str:
    """A Markdown link to an http(s) ``url`` whose text is ``label`` (escaped); no link else.

    Examples:
        >>> markdown_link("run", "http://127.0.0.1:4200/runs/task-run/a b)")
        '[run](http://127.0.0.1:4200/runs/task-run/a%20b%29)'
        >>> markdown_link("run", "javascript:alert(1)")
        ''
    """
    if not url or urlsplit(url).scheme.lower() not in ("http", "https"):
        return ""
    return f"[{markdown_cell(label)}]({quote(url, safe=':/?&=#%@+,;~')})"


def terminal_text(text: str) -> str:
    r"""``text`` with control characters shown as escapes, so that no name can move the
    cursor, change colours, set the window title or fake a new line in a terminal.

    Examples:
        >>> terminal_text("ok\x1b]0;pwned\x07 next\nline\tx")
        'ok\\x1b]0;pwned\\x07 next\\nline\\tx'
    """
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )
