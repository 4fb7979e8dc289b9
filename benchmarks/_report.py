"""Print the Markdown tables of benchmarks/README.md from the JSON in benchmarks/results/.

uv run python benchmarks/_report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def fetch_tables(data: dict[str, Any]) -> list[str]:
    out = []
    for setting in ("local", "latency"):
        if setting not in data:
            continue
        summary = data[setting]["summary"]
        rounds = len(next(iter(data[setting]["samples"].values())))
        title = (
            "local server"
            if setting == "local"
            else f"+{data['args']['delay_ms']:.0f} ms a request"
        )
        out += [f"**{title}** (median of {rounds} rounds)", ""]
        out += [
            row("variant", "states", "seconds", "states/s", "requests/state", "peak RSS MiB"),
            row("---", "---:", "---:", "---:", "---:", "---:"),
        ]
        for variant, s in summary.items():
            if variant == "ratios":
                continue
            out.append(
                row(
                    variant,
                    f"{s['states']:.0f}",
                    f"{s['seconds']:.1f}",
                    f"{s['states_per_s']:.0f}",
                    f"{s['requests_per_state']:.3f}",
                    f"{s['peak_rss_mib']:.0f}",
                )
            )
        out += ["", "ratios of states/s, within a round, median: "]
        out.append(", ".join(f"{k} **{v:.2f}x**" for k, v in summary["ratios"].items()))
        out.append("")
    if "incremental" in data:
        inc = data["incremental"]["incremental_export"]
        export = inc["export"]
        out.append(
            f"**incremental export** (`export_states`, events, default 10 min overlap) after a "
            f"slice of {data['incremental']['slice_task_runs']} new task runs: "
            f"{inc['requests']} requests for {inc['states']} new states "
            f"({export['states']} read, overlap included) = "
            f"**{inc['requests_per_new_state']:.3f} requests per new state**, {inc['seconds']:.1f} s."
        )
    return out


def analysis_tables(data: dict[str, Any]) -> list[str]:
    summary = data["summary"]
    d = data["data"]
    out = [
        f"{d['states']:,} states; in memory {d['in_memory_mib']:.0f} MiB (all 30 columns), "
        f"{d['in_memory_needed_columns_mib']:.0f} MiB (the 6 columns the metrics read)"
        + (
            f" (Polars' estimated_size: {d['polars_estimated_size_mib']:.0f} and "
            f"{d['polars_estimated_size_needed_columns_mib']:.0f} MiB)"
            if "polars_estimated_size_mib" in d
            else ""
        )
        + f"; Parquet {d['parquet_mib']:.0f} MiB. Median of {data.get('rounds_done', '?')} rounds.",
        "",
        row(
            "engine",
            "load s",
            "durations s",
            "retries s",
            "failures s",
            "total s",
            "peak RSS MiB",
            "columns read MiB",
            "peak / read",
            "peak / estimate",
        ),
        row("---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:"),
    ]
    for engine, s in summary.items():
        if engine == "ratios":
            continue
        if "killed_above_mib" in s:
            out.append(row(engine, *["killed"] * 5, f"> {s['killed_above_mib']:.0f}", "", "", ""))
            continue
        out.append(
            row(
                engine,
                f"{s['load_s']:.2f}",
                f"{s['durations']:.2f}",
                f"{s['retries']:.2f}",
                f"{s['failures']:.2f}",
                f"{s['total_s']:.2f}",
                f"{s['peak_rss_mib']:.0f}",
                f"{s.get('read_mib', d['in_memory_mib']):.0f}",
                f"{s.get('peak_over_read', s.get('peak_over_data', 0)):.2f}",
                f"{s['peak_over_read_estimate']:.2f}" if "peak_over_read_estimate" in s else "",
            )
        )
    out += ["", row("ratio (same round, median)", "durations", "retries", "failures", "total")]
    out.append(row("---", "---:", "---:", "---:", "---:"))
    for name, r in summary["ratios"].items():
        out.append(
            row(name, *(f"{r[m]:.2f}" for m in ("durations", "retries", "failures", "total")))
        )
    return out


def scale_tables(data: dict[str, Any]) -> list[str]:
    d, r = data["data"], data["run"]
    if not data["met"]:
        verdict = "**missed**"
    else:
        verdict = "met" if r.get("complete", True) else "not passed up to the cut"
    out = [
        f"{d['states']:,} states in {d['files']} Parquet files ({d['parquet_mib']:.0f} MiB), "
        f"variant `{data['args']['variant']}`, DuckDB {r['duckdb_version']}, "
        f"memory_limit {data['args']['memory_limit']}, {data['args']['threads']} threads.",
        "",
    ]
    spill = r.get("spill_peak_mib")  # recorded since 2026-11-29's second run
    extra = ["spill peak MiB"] if spill is not None else []
    out += [
        row("metric", "seconds", "result rows", *extra),
        row("---", *["---:"] * (2 + len(extra))),
    ]
    for name, seconds in r["seconds"].items():
        peak = [f"{spill[name]:,.0f}"] if spill is not None else []
        out.append(row(name, f"{seconds:.1f}", f"{r['rows'][name]:,}", *peak))
    for name, failed in r.get("errors", {}).items():
        peak = [f"{spill[name]:,.0f}"] if spill is not None else []
        out.append(row(name, f"failed after {failed['after_s']:.1f}", failed["error"], *peak))
    out += [
        row("**total**", f"**{r['total_s']:.1f}**", "", *([""] if extra else [])),
        "",
        (
            ""
            if r.get("complete", True)
            else f"The run was stopped after {r['cut_after_min']:.1f} min (its deadline); "
            "the metrics not listed had not finished. "
        )
        + f"Peak RSS of the whole process: **{r['peak_rss_mib']:,.0f} MiB** "
        f"(target 4,096 MiB: {verdict}); "
        f"wall time with start-up {r['wall_s']:.0f} s.",
    ]
    return out


def export_tables(data: dict[str, Any]) -> list[str]:
    d = data["data"]
    out = [
        f"{d['states']:,} states, {d['columns']} columns, {d['in_memory_mib']:.0f} MiB in memory; "
        f"median of {data['args']['repeats'] if not data['args']['quick'] else 3} writes.",
        "",
        row(
            "compression",
            "write s",
            "states/s written",
            "MiB per 1M states",
            "bytes/state",
            "x smaller than memory",
            "read back s",
        ),
        row("---", "---:", "---:", "---:", "---:", "---:", "---:"),
    ]
    for name, s in data["summary"].items():
        out.append(
            row(
                name,
                f"{s['write_s']:.2f}",
                f"{s['write_states_per_s']:,.0f}",
                f"{s['file_mib_per_million_states']:.1f}",
                f"{s['bytes_per_state']:.1f}",
                f"{s['ratio_to_in_memory']:.1f}",
                f"{s['read_s']:.2f}",
            )
        )
    return out


def main() -> None:
    sections = {
        "fetch": fetch_tables,
        "analysis": analysis_tables,
        "scale": scale_tables,
        "export": export_tables,
    }
    names = sys.argv[1:] or list(sections)
    for name in names:
        kind = name.split("_")[0]
        data = load(name)
        if data is None:
            continue
        m = data["machine"]
        print(f"### {name}\n")
        print(
            f"{m['date']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, Python {m['python']}, "
            f"Polars {m['polars']}; load average {m['loadavg_1m_at_start']:.1f} at start, "
            f"{data.get('loadavg_1m_at_end', 0):.1f} at end.\n"
        )
        print("\n".join(sections[kind](data)))
        print()


if __name__ == "__main__":
    main()
