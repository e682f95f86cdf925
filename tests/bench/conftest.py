"""Shared by the bench tests: what of a stored record must not depend on timing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

TIMING_KEYS = ("eval_seconds", "images_per_s")
"""Stored numbers that measure the machine, not the method."""
PROFILE_TIMING_KEYS = ("median_step_seconds", "min_step_seconds", "max_step_seconds",
                       "load_average")


def timing_free(records: dict[str, dict]) -> dict[str, object]:
    """Every stored number that does not depend on timing, by job key."""
    found: dict[str, object] = {}
    for key, record in records.items():
        assert record["status"] == "ok", (key, record.get("error"))
        if record["kind"] == "profile":
            found[key] = [{k: v for k, v in row.items() if k not in PROFILE_TIMING_KEYS}
                          for row in record["profile"]]
        else:
            found[key] = {d: {k: v for k, v in m.items() if k not in TIMING_KEYS}
                          for d, m in record["durations"].items()}
    return found


@pytest.fixture(scope="session")
def metrics_of() -> Callable[[dict[str, dict]], dict[str, object]]:
    """:func:`timing_free`: the store's records without their timings, by job key."""
    return timing_free
