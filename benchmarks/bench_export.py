"""Export benchmark: Parquet write throughput and file size per million states, by compression.

    uv run python benchmarks/bench_export.py            # 1M states, 5 repeats
    uv run python benchmarks/bench_export.py --quick    # 200k states, 3 repeats

The frame is ``generate_states`` output (all 30 columns of the contract). Each
setting is written with ``trs_analytics.write_states`` (atomic: temporary file,
fsync, rename) ``--repeats`` times, settings interleaved; the figures are
medians. Read-back time (``scan_states(path).collect()``) is measured too, as
the other half of what a compression setting costs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, median, save_results

#: (codec, level) pairs; None is the codec's default level.
SETTINGS: tuple[tuple[str, int | None], ...] = (
    ("uncompressed", None),
    ("snappy", None),
    ("lz4", None),
    ("zstd", 1),
    ("zstd", None),
    ("zstd", 9),
    ("gzip", None),
    ("brotli", None),
)


def label(codec: str, level: int | None) -> str:
    return codec if level is None else f"{codec}-{level}"


def main() -> None:

    import trs_analytics as ta
    import trs_analytics.testing as tt

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--states", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    states = 200_000 if args.quick else args.states
    repeats = 3 if args.quick else args.repeats

    frame = tt.generate_states(round(states / 3.17), seed=3, days=30, n_flows=20, n_tasks=200)
    in_memory_mib = frame.estimated_size() / 2**20
    per_million = 1_000_000 / frame.height
    samples: dict[str, list[dict[str, float]]] = {label(*s): [] for s in SETTINGS}
    sizes: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent / ".work") as folder:
        for r in range(repeats):
            for codec, level in SETTINGS:
                name = label(codec, level)
                path = Path(folder) / f"{name}.parquet"
                started = time.perf_counter()
                ta.write_states(frame, path, compression=codec, compression_level=level)  # type: ignore[arg-type]
                write_s = time.perf_counter() - started
                started = time.perf_counter()
                back = ta.scan_states(path).collect()
                read_s = time.perf_counter() - started
                if r == 0 and not back.equals(frame):
                    raise AssertionError(f"{name}: the file does not read back as written")
                sizes[name] = path.stat().st_size / 2**20
                samples[name].append({"write_s": write_s, "read_s": read_s})
                print(
                    f"[{r + 1}] {name:12s} write {write_s:6.2f}s read {read_s:6.2f}s "
                    f"{sizes[name]:7.1f} MiB",
                    flush=True,
                )
    summary: dict[str, Any] = {}
    for name, runs in samples.items():
        write_s = median([x["write_s"] for x in runs])
        read_s = median([x["read_s"] for x in runs])
        summary[name] = {
            "write_s": write_s,
            "read_s": read_s,
            "write_states_per_s": frame.height / write_s,
            "write_mib_per_s_in_memory": in_memory_mib / write_s,
            "file_mib": sizes[name],
            "file_mib_per_million_states": sizes[name] * per_million,
            "bytes_per_state": sizes[name] * 2**20 / frame.height,
            "ratio_to_in_memory": in_memory_mib / sizes[name],
        }
    results = {
        "machine": machine(),
        "args": vars(args),
        "data": {"states": frame.height, "in_memory_mib": in_memory_mib, "columns": frame.width},
        "samples": samples,
        "summary": summary,
    }
    print(f"{'setting':12s} {'write/s':>10s} {'MiB/1M':>8s} {'read s':>7s}")
    for name, row in summary.items():
        print(
            f"{name:12s} {row['write_states_per_s']:10.0f} "
            f"{row['file_mib_per_million_states']:8.1f} {row['read_s']:7.2f}"
        )
    print(f"results: {save_results('export_quick' if args.quick else 'export', results)}")


if __name__ == "__main__":
    main()
