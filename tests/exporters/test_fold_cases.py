"""fold_batchnorm case by case: which axis a layer acts on, and which ops commute with a BN.

Every case runs with and without ``input_size``; either way the folded model gives the eval-mode
original's output, and the report says what was folded, or kept and why.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from exporters import FoldReport, fold_batchnorm

UNKNOWN = "shape unknown: pass input_size"


def _fold(model: nn.Module, input_size: tuple[int, ...] | None, x: torch.Tensor) -> tuple[float, FoldReport]:
    """Max |folded - original| in eval mode on ``x``, and the report."""
    diff, report, _ = _fold_model(model, input_size, x)
    return diff, report


def _fold_model(
    model: nn.Module, input_size: tuple[int, ...] | None, x: torch.Tensor
) -> tuple[float, FoldReport, nn.Module]:
    model.eval()
    folded, report = fold_batchnorm(model, input_size=input_size)
    with torch.no_grad():
        return float((folded(x) - model(x)).abs().max()), report, folded


def _entry(report: FoldReport, bn: str) -> tuple[str, str | None, str | None, str]:
    found = next(e for e in report.entries if e.bn == bn)
    return found.action, found.into, found.direction, found.reason


# The audit's cases: a Linear acts on the last axis, a BN on axis 1; they agree only for (N, C).
LAST_AXIS_CASES = {
    "bn1d-on-3d-then-linear": (lambda: nn.Sequential(nn.BatchNorm1d(8), nn.Linear(8, 4)), (8, 8), "0"),
    "linear-on-3d-then-bn1d": (lambda: nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6)), (6, 5), "1"),
    "bn2d-then-linear-w-equals-c": (
        lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.BatchNorm2d(4), nn.Linear(4, 3)),
        (3, 5, 4),
        "2",
    ),
}
EXPECTED_REASONS = {  # (without input_size, with it)
    "bn1d-on-3d-then-linear": (UNKNOWN, "1 acts on the last axis of a rank-3 tensor"),
    "linear-on-3d-then-bn1d": (UNKNOWN, "0 output has rank 3, so its features are not the BN channels"),
    "bn2d-then-linear-w-equals-c": ("3 acts on the last axis of a rank-4 tensor",) * 2,
}


@pytest.mark.parametrize("with_size", [False, True], ids=["no-input-size", "input-size"])
@pytest.mark.parametrize("case", list(LAST_AXIS_CASES))
def test_linear_on_the_last_axis_of_a_wider_tensor_keeps_the_bn(case, with_size, randomize):
    build, size, bn = LAST_AXIS_CASES[case]
    torch.manual_seed(0)
    model = randomize(build())
    diff, report = _fold(model, size if with_size else None, torch.randn(6, *size) * 3)
    action, _, _, reason = _entry(report, bn)
    assert action == "kept" and EXPECTED_REASONS[case][with_size] in reason, reason
    assert diff < 1e-5


def test_failed_shape_propagation_keeps_the_bn_and_says_why(randomize):
    model = randomize(nn.Sequential(nn.BatchNorm1d(8), nn.Linear(8, 4)))
    diff, report = _fold(model, (7, 8), torch.randn(4, 8, 8))  # (7, 8) is not what the model takes
    action, _, _, reason = _entry(report, "0")
    assert action == "kept" and "shape unknown: running the model on input_size (7, 8) failed" in reason
    assert diff < 1e-5


@pytest.mark.parametrize("size", [None, (3, 6, 6)], ids=["no-input-size", "input-size"])
def test_bn1d_after_flatten_folds_forward_into_the_linear(size, randomize):
    torch.manual_seed(1)
    model = randomize(nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten(), nn.BatchNorm1d(32), nn.Linear(32, 5)))
    diff, report = _fold(model, size, torch.randn(4, 3, 6, 6))
    assert _entry(report, "3")[:3] == ("folded", "4", "forward")
    assert diff < 1e-5


@pytest.mark.parametrize("size", [None, (4, 9)], ids=["no-input-size", "input-size"])
def test_bn1d_on_a_sequence_folds_into_conv1d_only_when_the_rank_is_known(size, randomize):
    torch.manual_seed(2)
    model = randomize(
        nn.Sequential(nn.Conv1d(4, 6, 3), nn.ReLU(), nn.BatchNorm1d(6), nn.AvgPool1d(2), nn.Conv1d(6, 5, 2)),
        positive_scale=True,
    )
    diff, report = _fold(model, size, torch.randn(3, 4, 9))
    if size is None:
        assert _entry(report, "2")[0] == "kept" and UNKNOWN in _entry(report, "2")[3]
    else:
        assert _entry(report, "2")[:3] == ("folded", "4", "forward")
    assert diff < 1e-5


@pytest.mark.parametrize("size", [None, (4, 9)], ids=["no-input-size", "input-size"])
def test_conv1d_then_bn1d_folds_backward_only_when_the_rank_is_known(size, randomize):
    """An unbatched (C, L) input would make the BN see (N=C, L): only a rank-3 output has the BN channels."""
    torch.manual_seed(6)
    model = randomize(nn.Sequential(nn.Conv1d(4, 6, 3), nn.BatchNorm1d(6), nn.ReLU()))
    diff, report = _fold(model, size, torch.randn(3, 4, 9))
    expected = ("kept", None, None) if size is None else ("folded", "0", "backward")
    assert _entry(report, "1")[:3] == expected
    assert diff < 1e-5


def test_2d_pool_on_a_sequence_mixes_bn_channels_and_keeps_the_bn(randomize):
    """AvgPool2d sees (N, C, L) as one unbatched image of C rows: it averages BN channels together."""
    torch.manual_seed(7)
    model = randomize(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(8), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)))
    diff, report = _fold(model, (8, 8), torch.randn(3, 8, 8))
    action, _, _, reason = _entry(report, "1")
    assert action == "kept" and "2 (AvgPool2d) needs a rank-4 (N, C, ...) input" in reason, reason
    assert diff < 1e-5


def _after_relu(*tail: nn.Module, channels: int = 4) -> nn.Sequential:
    """Conv -> ReLU -> BN (index 2) -> ``tail``: the BN can only fold forward."""
    return nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(channels), *tail)


FOLDING_FORWARD = {
    "avgpool": lambda: _after_relu(nn.AvgPool2d(2), nn.Conv2d(4, 5, 3)),
    "avgpool-padded-not-counted": lambda: _after_relu(
        nn.AvgPool2d(3, 2, 1, count_include_pad=False), nn.Conv2d(4, 5, 2)
    ),
    "adaptive-avgpool": lambda: _after_relu(nn.AdaptiveAvgPool2d(3), nn.Conv2d(4, 5, 2)),
    "reflect-padding": lambda: _after_relu(nn.Conv2d(4, 5, 3, padding=1, padding_mode="reflect")),
    "replicate-padding": lambda: _after_relu(nn.Conv2d(4, 5, 3, padding=1, padding_mode="replicate")),
    "circular-padding": lambda: _after_relu(nn.Conv2d(4, 5, 3, padding=1, padding_mode="circular")),
    "maxpool-padded": lambda: _after_relu(nn.MaxPool2d(3, 2, padding=1), nn.Dropout(), nn.Conv2d(4, 5, 2)),
    "conv-without-bias": lambda: _after_relu(nn.Conv2d(4, 5, 3, bias=False)),
    "strided-conv": lambda: _after_relu(nn.Conv2d(4, 5, 3, stride=2)),
    "dilated-conv": lambda: _after_relu(nn.Conv2d(4, 5, 3, dilation=2)),
    "grouped-conv": lambda: _after_relu(nn.Conv2d(4, 6, 3, groups=2)),
    "depthwise-conv": lambda: _after_relu(nn.Conv2d(4, 8, 3, groups=4, bias=False)),
    "pool-flatten-linear": lambda: _after_relu(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)),
}


@pytest.mark.parametrize("size", [None, (3, 8, 8)], ids=["no-input-size", "input-size"])
@pytest.mark.parametrize("case", list(FOLDING_FORWARD))
def test_bn_folds_forward_through_ops_that_commute(case, size, randomize):
    torch.manual_seed(3)
    model = randomize(FOLDING_FORWARD[case](), positive_scale=True)
    diff, report, folded = _fold_model(model, size, torch.randn(3, 3, 8, 8))
    action, into, direction, reason = _entry(report, "2")
    assert (action, direction, into) == ("folded", "forward", str(len(model) - 1)), reason
    assert isinstance(folded[2], nn.Identity) and folded[-1].bias is not None  # a conv without bias gains one
    assert diff < 1e-5


class _TwoConsumers(nn.Module):
    """The BN output feeds two convs: one fold would change the other branch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.left = nn.Conv2d(4, 2, 1)
        self.right = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(torch.relu(self.conv(x)))
        return self.left(y) + self.right(y)


KEPT = {
    "relu-between": (lambda: _after_relu(nn.ReLU(), nn.Conv2d(4, 5, 3)), "2", "3 (ReLU) stands between it"),
    "zero-padding": (lambda: _after_relu(nn.Conv2d(4, 5, 3, padding=1)), "2", "zero padding of 3 breaks"),
    "avgpool-counting-padding": (
        lambda: _after_relu(nn.AvgPool2d(3, 2, 1), nn.Conv2d(4, 5, 2)),
        "2",
        "3 (AvgPool2d) stands between it",
    ),
    "two-consumers": (_TwoConsumers, "bn", "the output of bn (BatchNorm2d) is used by 2 ops"),
}


@pytest.mark.parametrize("size", [None, (3, 8, 8)], ids=["no-input-size", "input-size"])
@pytest.mark.parametrize("case", list(KEPT))
def test_bn_is_kept_when_what_follows_does_not_commute(case, size, randomize):
    build, bn, expected = KEPT[case]
    torch.manual_seed(4)
    model = randomize(build(), positive_scale=True)
    diff, report = _fold(model, size, torch.randn(3, 3, 8, 8))
    action, _, _, reason = _entry(report, bn)
    assert action == "kept" and expected in reason, reason
    assert diff < 1e-5


@pytest.mark.parametrize("size", [None, (3, 8, 8)], ids=["no-input-size", "input-size"])
def test_negative_scale_before_maxpool_is_kept_naming_the_channel(size, randomize):
    torch.manual_seed(5)
    model = randomize(_after_relu(nn.MaxPool2d(2), nn.Conv2d(4, 5, 3)), positive_scale=True)
    with torch.no_grad():
        model[2].weight[2] = -0.7
    diff, report = _fold(model, size, torch.randn(3, 3, 8, 8))
    action, _, _, reason = _entry(report, "2")
    assert action == "kept" and "3 (MaxPool2d) commutes with it only for a positive scale; channels [2]" in reason
    assert diff < 1e-5
