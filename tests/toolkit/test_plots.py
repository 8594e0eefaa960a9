"""Training curves mark the epoch whose weights a run kept, and only when that is not its last epoch."""
from __future__ import annotations

import pytest

from toolkit.plots import kept_weights_epoch


def _metrics(epochs: int, **extra: object) -> dict[str, object]:
    return {"history": [{"epoch": e} for e in range(1, epochs + 1)], **extra}


@pytest.mark.parametrize("metrics, kept", [
    (_metrics(10, best_epoch=6, kept_epoch=10), 10),  # written by this toolkit: kept_epoch says it
    (_metrics(10, best_epoch=6, kept_epoch=6), 6),
    # metrics.json from before kept_epoch: early stopping restored the best epoch, a run without it kept the last
    (_metrics(10, best_epoch=6, config={"early_stopping": True}), 6),
    (_metrics(10, best_epoch=6, config={"early_stopping": False}), 10),
])
def test_kept_weights_epoch(metrics: dict[str, object], kept: int) -> None:
    assert kept_weights_epoch(metrics) == kept
