"""A second, independent implementation of the headline metrics in DuckDB SQL.

The SQL below is written from the semantics in docs/metrics.md, not from the
Polars code: de-duplicate by state id, order each run by timestamp (ties by
lifecycle order of the type, then id), count RUNNING-type states as attempts,
take the latest state as the outcome. Both must agree on the synthetic data,
and on ``data/sample_states.parquet`` (a real sample) when it is there.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

import trs_analytics as ta
import trs_analytics.testing as tt

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_states.parquet"


def _synthetic() -> pl.DataFrame:
    clean = tt.generate_states(4_000, seed=11, days=2, n_flows=3, n_tasks=12)
    # late and duplicated deliveries: 10% of the states twice, all in random order
    return pl.concat([clean, clean.sample(fraction=0.1, seed=1)]).sample(
        fraction=1.0, shuffle=True, seed=2
    )


DATASETS = [pytest.param(_synthetic, id="synthetic")]
if SAMPLE.exists():
    DATASETS.append(pytest.param(lambda: pl.read_parquet(SAMPLE), id="sample_states.parquet"))


@pytest.fixture(scope="module", params=DATASETS)
def states(request: pytest.FixtureRequest) -> pl.DataFrame:
    frame: pl.DataFrame = request.param()
    assert frame.height > 0
    return frame


def _sql(states: pl.DataFrame, query: str) -> pl.DataFrame:
    con = duckdb.connect()
    raw = states.select(
        "id",
        "task_run_id",
        "task_name",
        pl.col("type").cast(pl.String),
        "name",
        ts=pl.col("timestamp").dt.epoch("us"),
    )
    con.register("raw", raw.to_arrow())
    con.execute(
        """
        CREATE VIEW timeline AS
        WITH dedup AS (
            SELECT * FROM raw QUALIFY row_number() OVER (PARTITION BY task_run_id, id) = 1
        )
        SELECT *,
               row_number() OVER (
                   PARTITION BY task_run_id
                   ORDER BY ts,
                            list_position(['SCHEDULED', 'PENDING', 'RUNNING', 'PAUSED',
                                           'CANCELLING', 'COMPLETED', 'FAILED', 'CANCELLED',
                                           'CRASHED'], type),
                            id
               ) AS pos,
               count(*) OVER (PARTITION BY task_run_id) AS n
        FROM dedup
        """
    )
    con.execute(
        """
        CREATE VIEW runs AS
        SELECT task_run_id,
               any_value(task_name) AS task_name,
               count(*) FILTER (WHERE type = 'RUNNING') AS attempts,
               greatest(count(*) FILTER (WHERE type = 'RUNNING') - 1, 0) AS retries,
               max(type) FILTER (WHERE pos = n) AS final_type,
               count(*) FILTER (WHERE type IN ('FAILED', 'CRASHED') AND pos < n) AS failed_before,
               min(ts) AS first_ts,
               max(ts) FILTER (WHERE pos = n) AS last_ts
        FROM timeline GROUP BY task_run_id
        """
    )
    frame: pl.DataFrame = con.sql(query).pl()
    return frame


def test_retry_counts_agree(states: pl.DataFrame) -> None:
    sql = _sql(
        states,
        """
        SELECT task_run_id, attempts::UINTEGER AS attempts, retries::UINTEGER AS retries, final_type,
               final_type = 'COMPLETED' AND (attempts > 1 OR failed_before > 0) AS rescued
        FROM runs ORDER BY task_run_id
        """,
    )
    ours = ta.retry_counts(states).select(
        "task_run_id", "attempts", "retries", pl.col("final_type").cast(pl.String), "rescued"
    )
    assert ours.equals(sql)


def test_failure_rates_agree(states: pl.DataFrame) -> None:
    sql = _sql(
        states,
        """
        WITH g AS (
            SELECT task_name,
                   count(*) FILTER (WHERE final_type IN ('COMPLETED', 'FAILED', 'CRASHED')) AS n,
                   count(*) FILTER (WHERE final_type IN ('FAILED', 'CRASHED')) AS x,
                   count(*) FILTER (WHERE final_type NOT IN
                                    ('COMPLETED', 'FAILED', 'CRASHED', 'CANCELLED')) AS unfinished
            FROM runs GROUP BY task_name
        ), p AS (SELECT *, x / n AS rate, 1.959963984540054 AS z FROM g)
        SELECT task_name, n AS runs, x AS failed, unfinished, rate AS failure_rate,
               CASE WHEN x = 0 THEN 0.0 ELSE
                 (rate + z*z/(2*n) - z*sqrt(rate*(1-rate)/n + z*z/(4*n*n))) / (1 + z*z/n) END AS ci_low,
               CASE WHEN x = n THEN 1.0 ELSE
                 (rate + z*z/(2*n) + z*sqrt(rate*(1-rate)/n + z*z/(4*n*n))) / (1 + z*z/n) END AS ci_high
        FROM p ORDER BY task_name
        """,
    )
    ours = ta.failure_rates(states, by="task_name")
    assert ours["task_name"].to_list() == sql["task_name"].to_list()
    for column in ("runs", "failed", "unfinished"):
        assert ours[column].to_list() == sql[column].to_list(), column
    for column in ("failure_rate", "ci_low", "ci_high"):
        assert ours[column].to_list() == pytest.approx(sql[column].to_list(), rel=1e-12), column


def test_durations_agree(states: pl.DataFrame) -> None:
    sql = _sql(
        states,
        """
        WITH q AS (
            SELECT task_run_id, min(pos) FILTER (WHERE type IN ('SCHEDULED', 'PENDING')) AS q_pos
            FROM timeline GROUP BY task_run_id
        ), steps AS (
            SELECT t.*, lead(ts) OVER (PARTITION BY task_run_id ORDER BY pos) AS next_ts
            FROM timeline t
        )
        SELECT r.task_run_id,
               CASE WHEN r.final_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')
                    THEN r.last_ts - r.first_ts END AS end_to_end_us,
               (SELECT min(s.ts) FROM timeline s
                 WHERE s.task_run_id = r.task_run_id AND s.type = 'RUNNING' AND s.pos > q.q_pos)
                 - (SELECT s.ts FROM timeline s WHERE s.task_run_id = r.task_run_id AND s.pos = q.q_pos)
                 AS queue_wait_us,
               (SELECT CASE WHEN count(*) = count(next_ts) THEN sum(next_ts - ts) END
                  FROM steps s WHERE s.task_run_id = r.task_run_id AND s.type = 'RUNNING'
                 HAVING count(*) > 0) AS run_time_us
        FROM runs r JOIN q USING (task_run_id)
        ORDER BY r.task_run_id
        """,
    )
    micros = pl.col("duration").dt.total_microseconds()
    e2e = ta.end_to_end(states).select("task_run_id", end_to_end_us=micros)
    queue = ta.queue_wait(states).select("task_run_id", queue_wait_us=micros)
    running = ta.run_time(states).select("task_run_id", run_time_us=micros)
    ours = e2e.join(queue, on="task_run_id", how="left").join(running, on="task_run_id", how="left")
    assert ours.sort("task_run_id").equals(sql.cast(dict.fromkeys(sql.columns[1:], pl.Int64)))


def test_run_time_summary_agrees(states: pl.DataFrame) -> None:
    sql = _sql(
        states,
        """
        WITH steps AS (
            SELECT t.*, lead(ts) OVER (PARTITION BY task_run_id ORDER BY pos) AS next_ts
            FROM timeline t
        ), per_run AS (
            SELECT task_run_id, any_value(task_name) AS task_name,
                   CASE WHEN count(*) = count(next_ts) THEN sum(next_ts - ts) END AS us
            FROM steps WHERE type = 'RUNNING' GROUP BY task_run_id
        )
        SELECT task_name, count(us) AS count, min(us) AS min, max(us) AS max,
               quantile_cont(us, 0.5) AS p50, quantile_cont(us, 0.95) AS p95, avg(us) AS mean
        FROM per_run GROUP BY task_name ORDER BY task_name
        """,
    )
    ours = ta.summarize(ta.run_time(states), by="task_name")
    assert ours["task_name"].to_list() == sql["task_name"].to_list()
    assert ours["count"].to_list() == sql["count"].to_list()
    for column in ("min", "max", "p50", "p95", "mean"):
        got = ours[column].dt.total_microseconds().to_list()
        assert got == pytest.approx(sql[column].to_list(), abs=1), column
