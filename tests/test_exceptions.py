"""The exception tree: one module, one root, all exported; wrong arguments are ConfigurationErrors."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import polars as pl
import pytest

import trs_analytics as ta
import trs_analytics.testing as tt
from trs_analytics import exceptions, metrics
from trs_analytics.client import PrefectClient


def _package_exceptions() -> set[type[BaseException]]:
    """Every public exception class defined anywhere in the package."""
    found: set[type[BaseException]] = set()
    for info in pkgutil.walk_packages(ta.__path__, "trs_analytics."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__.startswith("trs_analytics")
                and not name.startswith("_")
            ):
                found.add(value)
    return found


def test_every_exception_is_in_the_tree_of_exceptions_py_and_exported() -> None:
    found = _package_exceptions()
    assert ta.DatasetLockedError in found
    assert ta.MissingDependencyError in found
    for error in found:
        assert error.__module__ == "trs_analytics.exceptions", error
        assert issubclass(error, ta.TrsAnalyticsError), error
        assert error.__name__ in ta.__all__, error
        assert error.__name__ in exceptions.__all__, error
        assert error.__name__ in (exceptions.__doc__ or ""), f"{error} is not drawn in the tree"
    assert ta.MissingDependencyError.__mro__[1] is ta.ConfigurationError
    assert ta.DatasetLockedError.__mro__[1] is ta.StorageError


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"requests_per_minute": 0}, "requests_per_minute must be a finite number, positive"),
        ({"concurrency": 0}, "concurrency"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_the_client_refuses_a_bad_option_with_a_configuration_error(
    options: dict[str, float], argument: str
) -> None:
    with pytest.raises(ta.ConfigurationError, match=re.escape(argument)):
        PrefectClient("http://127.0.0.1:9/api", **options)  # type: ignore[arg-type]


#: The options a metric needs besides its frame, for it to reach the frame.
_REQUIRED: dict[str, dict[str, object]] = {
    "duration_trend": {"every": "1d"},
    "run_volume": {"every": "1d"},
    "durations": {"start": "RUNNING", "end": "COMPLETED"},
    "sla_report": {
        "rules": ta.parse_rules('[[rule]]\nname = "r"\ntask = "*"\nmax_run_time = "1h"\n')
    },
}
#: Public functions of the metrics that take no frame first.
_NO_FRAME = {"parse_every", "parse_rules", "wilson"}
_FRAME_FUNCTIONS = sorted(
    name
    for name in metrics.__all__
    if inspect.isfunction(getattr(metrics, name)) and name not in _NO_FRAME
)


def test_every_frame_function_is_listed() -> None:
    # explode_tags takes the frame first too; no metric is left out of the next test
    assert "run_time" in _FRAME_FUNCTIONS
    assert len(_FRAME_FUNCTIONS) >= 35


@pytest.mark.parametrize("name", _FRAME_FUNCTIONS)
@pytest.mark.parametrize("wrong", ["states.parquet", {"a": [1]}, pl.Series([1])])
def test_a_metric_given_no_frame_names_itself_and_its_argument(name: str, wrong: object) -> None:
    function = getattr(ta, name, None) or getattr(metrics, name)
    first = next(iter(inspect.signature(function).parameters))
    options = _REQUIRED.get(name, {})
    extra = ["tags"] if name == "explode_tags" else []
    expected = f"{name}({first}=...) needs a Polars DataFrame or LazyFrame"
    with pytest.raises(ta.ConfigurationError, match=re.escape(expected)) as caught:
        function(wrong, *extra, **options)
    assert f"got {type(wrong).__name__}. Hint: read states with" in str(caught.value)


def test_a_bad_anomaly_option_says_the_defaults_its_signature_has() -> None:
    states = tt.generate_states(20, seed=1)
    with pytest.raises(
        ta.ConfigurationError, match=r"Hint: the defaults are 3\.0, 1\.0, 14 and 5\.$"
    ):
        ta.detect_anomalies(states, z=0)
    spelled = ta.detect_anomalies(
        states, by="task_name", metric="run_time", every="1d", min_training=14, min_runs=5, z=3.0
    )
    assert spelled.equals(ta.detect_anomalies(states))
