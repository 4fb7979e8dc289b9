"""Progress of a long fetch or export: the record, the tally, and its display.

A base module (it imports nothing of trs_analytics but its exceptions): the
fetchers report :class:`Progress` records through a callback, and this module
draws them. It shows a bar only where someone watches:

* in a Jupyter kernel: an HTML ``<progress>`` bar with counts, updated in place
  through IPython's display handle (no ipywidgets needed, so it renders in
  JupyterLab, Notebook 7 and VS Code as installed);
* in a terminal (stderr is a TTY): a rich progress bar on stderr, the one the
  CLI draws;
* anywhere else (cron, CI, a pipe, a test run): nothing.
"""

from __future__ import annotations

import html
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterator

    import polars as pl
    from rich.console import Console

__all__ = [
    "Progress",
    "Tally",
    "describe",
    "logged_step",
    "peak_rss_mib",
    "progress_bar",
    "steps_bar",
]


@dataclass(frozen=True, kw_only=True)
class Progress:
    """How far a fetch or an export has got; passed to ``on_progress`` after every batch.

    Attributes:
        since: start of the window being read.
        until: end of the window being read.
        source: the source the window is read from: ``"events"``, ``"states"``
            or ``"states+events"`` (older part per run, recent part from events).
        states: states read so far (overlap re-reads included).
        runs: distinct runs among them (task runs, or flow runs: see ``runs_label``).
        requests: HTTP requests sent so far.
        latest: the newest state timestamp read so far, or ``None``.
        runs_label: what ``runs`` counts: ``"task runs"`` or ``"flow runs"``.

    Examples:
        >>> from datetime import UTC, timedelta
        >>> day = datetime(2026, 1, 1, tzinfo=UTC)
        >>> Progress(since=day, until=day + timedelta(hours=4), source="events",
        ...          states=10, runs=3, requests=2,
        ...          latest=day + timedelta(hours=1)).fraction
        0.25
    """

    since: datetime
    until: datetime
    source: str
    states: int
    runs: int
    requests: int
    latest: datetime | None
    runs_label: str = "task runs"

    @property
    def fraction(self) -> float:
        """A rough 0..1 share of the window covered (states come in time order for events)."""
        if self.latest is None:
            return 0.0
        span = (self.until - self.since).total_seconds()
        done = (self.latest - self.since).total_seconds()
        return min(1.0, max(0.0, done / span)) if span > 0 else 1.0


class Tally:
    """Counts what the batches of one fetch brought, as :class:`Progress` records.

    ``run_id`` is the column that identifies a run in the batches, and
    ``runs_label`` names what it counts (the fetch's kind of run).

    Examples:
        >>> import polars as pl
        >>> from datetime import UTC
        >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
        >>> sent = [5]  # the client's request counter
        >>> tally = Tally(since=t0, until=datetime(2026, 1, 2, tzinfo=UTC), source="events",
        ...               requests=lambda: sent[0])
        >>> sent[0] = 12
        >>> batch = pl.DataFrame({"task_run_id": ["a", "a", "b"], "timestamp": [t0, t0, t0]})
        >>> p = tally.add(batch)
        >>> p.states, p.runs, p.requests
        (3, 2, 7)
    """

    def __init__(
        self,
        *,
        since: datetime,
        until: datetime,
        source: str,
        requests: Callable[[], int],
        run_id: str = "task_run_id",
        runs_label: str = "task runs",
    ) -> None:
        self.since, self.until, self.source = since, until, source
        self._requests, self._requests0 = requests, requests()
        self.run_id, self.runs_label = run_id, runs_label
        self.states = 0
        self.runs: set[str] = set()
        self.latest: datetime | None = None

    @property
    def requests(self) -> int:
        """Requests sent since the tally started."""
        return self._requests() - self._requests0

    def add(self, batch: pl.DataFrame) -> Progress:
        """Count ``batch`` and return the progress so far."""
        self.states += batch.height
        self.runs.update(batch[self.run_id].to_list())
        newest = batch["timestamp"].max()
        if isinstance(newest, datetime):
            self.latest = newest if self.latest is None else max(self.latest, newest)
        return Progress(
            since=self.since,
            until=self.until,
            source=self.source,
            states=self.states,
            runs=len(self.runs),
            requests=self.requests,
            latest=self.latest,
            runs_label=self.runs_label,
        )


def describe(progress: Progress, elapsed: float) -> str:
    """The counts and the time left, where the fraction done makes it known.

    Examples:
        >>> from datetime import UTC, timedelta
        >>> day = datetime(2026, 1, 1, tzinfo=UTC)
        >>> p = Progress(since=day, until=day + timedelta(hours=4), source="events",
        ...              states=3456, runs=1234, requests=61,
        ...              latest=day + timedelta(hours=1))
        >>> describe(p, elapsed=10.0)
        '1,234 task runs, 3,456 states, 61 requests via events; 10 s, about 30 s left'
    """
    text = (
        f"{progress.runs:,} {progress.runs_label}, {progress.states:,} states, "
        f"{progress.requests:,} requests via {progress.source}; {elapsed:.0f} s"
    )
    done = progress.fraction
    if 0.0 < done < 1.0:
        text += f", about {elapsed * (1 - done) / done:.0f} s left"
    return text


def peak_rss_mib() -> float | None:
    """This process's peak resident memory so far, in MiB (None where the OS does not say).

    What ``-v`` logs after each step of a long job, to show which step set the peak.
    """
    try:
        import resource  # POSIX only
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, else KiB


@contextmanager
def logged_step(log: logging.Logger, job: str, name: str) -> Iterator[None]:
    """Log ``"<job>: <name> in <s> s (peak RSS <n> MiB)"`` at INFO once the block is done.

    What ``-v`` shows for each step of the report and the check: which step
    took the time, and which set the process's peak memory.
    """
    started = time.monotonic()
    yield
    peak = peak_rss_mib()
    memory = "" if peak is None else f" (peak RSS {peak:.0f} MiB)"
    log.info("%s: %s in %.1f s%s", job, name, time.monotonic() - started, memory)


def _in_jupyter() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    ipython = shell.get_ipython()
    return ipython is not None and type(ipython).__name__ == "ZMQInteractiveShell"


class _Jupyter:
    """An HTML bar updated in place through an IPython display handle."""

    def __init__(self, title: str) -> None:
        from IPython.display import HTML, display

        self.title, self.html = title, HTML
        first = HTML(self._render(0.0, "starting"))  # type: ignore[no-untyped-call]
        self.handle: Any = display(first, display_id=True)  # type: ignore[no-untyped-call]

    def _render(self, fraction: float, text: str) -> str:
        return (
            f'<div class="trs-progress"><b>{html.escape(self.title)}</b> '
            f'<progress value="{fraction:.3f}" max="1" style="width: 16em"></progress> '
            f"{html.escape(text)}</div>"
        )

    def update(self, fraction: float, text: str) -> None:
        self.handle.update(self.html(self._render(fraction, text)))  # type: ignore[no-untyped-call]


class _Terminal:
    """A rich progress bar on stderr (transient: it leaves no line behind)."""

    def __init__(self, title: str, console: Console | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn
        from rich.progress import Progress as Bar

        self.bar = Bar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console or Console(stderr=True),
            transient=True,
        )
        self.task = self.bar.add_task(title, total=1.0, detail="")
        self.bar.start()

    def update(self, fraction: float, text: str) -> None:
        self.bar.update(self.task, completed=fraction, detail=text)

    def stop(self) -> None:
        self.bar.stop()


def _view(enabled: bool, title: str, console: Console | None) -> _Jupyter | _Terminal | None:
    """Where a bar is drawn: a Jupyter widget, a terminal (or the given console), or nowhere."""
    jupyter = enabled and console is None and _in_jupyter()
    terminal = enabled and not jupyter and (console is not None or sys.stderr.isatty())
    if not (jupyter or terminal):
        return None
    return _Jupyter(title) if jupyter else _Terminal(title, console)


@contextmanager
def progress_bar(
    enabled: bool = True,
    *,
    title: str = "fetching task-run states",
    console: Console | None = None,
    interval: float = 0.2,
) -> Iterator[Callable[[Progress], None] | None]:
    """Yield an ``on_progress`` callback that draws a bar, or ``None`` where nobody watches.

    Args:
        enabled: ``False`` draws nothing anywhere.
        title: the bar's label.
        console: a rich console to draw on (default stderr, when it is a terminal).
        interval: seconds between two redraws (the last state is always drawn).

    Examples:
        >>> with progress_bar() as on_progress:  # a doctest run is not interactive
        ...     on_progress is None
        True
    """
    view = _view(enabled, title, console)
    if view is None:
        yield None
        return
    started, drawn = time.monotonic(), 0.0
    last: list[Progress] = []

    def on_progress(progress: Progress) -> None:
        nonlocal drawn
        last[:] = [progress]
        now = time.monotonic()
        if now - drawn >= interval:
            drawn = now
            view.update(progress.fraction, describe(progress, now - started))

    try:
        yield on_progress
        if last and isinstance(view, _Jupyter):
            view.update(1.0, "done: " + describe(last[0], time.monotonic() - started))
    finally:
        if isinstance(view, _Terminal):
            view.stop()


@contextmanager
def steps_bar(
    enabled: bool = True, *, title: str = "report", console: Console | None = None
) -> Iterator[Callable[[int, int, str], None] | None]:
    """Yield an ``on_step(number, of, name)`` callback drawing which step a long job is in,
    or ``None`` where nobody watches (the same places as :func:`progress_bar`).

    Examples:
        >>> with steps_bar() as on_step:  # a doctest run is not interactive
        ...     on_step is None
        True
    """
    view = _view(enabled, title, console)
    if view is None:
        yield None
        return
    started = time.monotonic()

    def on_step(number: int, of: int, name: str) -> None:
        elapsed = time.monotonic() - started
        view.update((number - 1) / of, f"{number}/{of} {name} ({elapsed:.0f} s so far)")

    try:
        yield on_step
        if isinstance(view, _Jupyter):
            view.update(1.0, f"done in {time.monotonic() - started:.0f} s")
    finally:
        if isinstance(view, _Terminal):
            view.stop()
