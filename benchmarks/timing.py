"""The timed loop shared by every engine: warm-up calls first (never recorded), then timed calls.

The timer wraps the inference call alone; anything the caller must do per call (binding, copies it
does not want measured) happens outside ``call``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Measure", "wall_ns", "time_calls", "time_once_ms"]

# A measure runs ``call`` once and returns how long it took, in nanoseconds.
Measure = Callable[[Callable[[], object]], int]


def wall_ns(call: Callable[[], object]) -> int:
    """Host wall-clock duration of one call (``time.perf_counter_ns``)."""
    start = time.perf_counter_ns()
    call()
    return time.perf_counter_ns() - start


def time_calls(
    call: Callable[[], object],
    *,
    warmup: int,
    runs: int,
    time_budget_s: float | None = None,
    measure: Measure = wall_ns,
) -> list[int]:
    """Run ``call`` ``warmup`` times untimed, then return the durations (ns) of the timed calls.

    Without a budget exactly ``runs`` calls are timed. With ``time_budget_s`` calls are timed until the
    budget (counted from the first timed call, warm-up excluded) is spent; at least one call is timed
    and ``runs`` is ignored, as with ``trtexec --duration`` or ``onnxruntime_perf_test -t``.
    """
    for _ in range(warmup):
        call()
    durations: list[int] = []
    if time_budget_s is None:
        for _ in range(runs):
            durations.append(measure(call))
        return durations
    deadline = time.perf_counter_ns() + int(time_budget_s * 1e9)
    while not durations or time.perf_counter_ns() < deadline:
        durations.append(measure(call))
    return durations


def time_once_ms(call: Callable[[], object], measure: Measure = wall_ns) -> float:
    """Duration of a single call in milliseconds (used for the cold first run)."""
    return measure(call) / 1e6
