"""Property check: on many small random Conv/BN/pool/Linear stacks, folding never changes the output.

Each stack is built from a fixed seed, with random BN statistics (negative scales included) and ops
that sometimes commute with a BN and sometimes do not (ReLU, zero padding, max pools after negative
scales, a Linear on the last axis of a 4-D or 3-D tensor, a 2-D pool over a 3-D tensor). Whatever
the fold decides, the folded model must give the eval-mode original's output, with and without
``input_size``.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

from exporters import FoldReport, fold_batchnorm

SEEDS = range(60)


class _Stack:
    """A random stack being built; tracks the shape of the tensor (without the batch axis)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.shape = [3, rng.choice([5, 6, 8]), rng.choice([5, 6, 8])]  # (C, H, W) of the input
        self.layers: list[nn.Module] = []

    def add(self, layer: nn.Module, shape: list[int]) -> None:
        self.layers.append(layer)
        self.shape = shape

    def image_op(self) -> None:
        """One op on (C, H, W)."""
        c, h, w = self.shape
        rng = self.rng
        ops = ["conv", "bn", "bn", "relu", "maxpool", "avgpool", "adaptive", "last_axis", "trap", "dropout"]
        pick = rng.choice(ops)
        if pick == "trap":  # W' == C, then BatchNorm2d -> Linear on W: its features look like the BN channels
            self.add(nn.Linear(w, c), [c, h, c])
            self.add(nn.BatchNorm2d(c), [c, h, c])
            self.add(nn.Linear(c, 4), [c, h, 4])
        elif pick == "conv":
            self._conv2d()
        elif pick == "bn":
            self.add(nn.BatchNorm2d(c), [c, h, w])
        elif pick == "relu":
            self.add(nn.ReLU(), [c, h, w])
        elif pick == "maxpool" and min(h, w) >= 2:
            pad, ceil = rng.choice([0, 1]), rng.random() < 0.3
            self.add(nn.MaxPool2d(2, padding=pad, ceil_mode=ceil), [c, *(_pooled(s, 2, 2, pad, ceil) for s in (h, w))])
        elif pick == "avgpool" and min(h, w) >= 2:
            pad, include = rng.choice([0, 1]), rng.random() < 0.5
            pool = nn.AvgPool2d(2, padding=pad, count_include_pad=include)
            self.add(pool, [c, (h + 2 * pad) // 2, (w + 2 * pad) // 2])
        elif pick == "adaptive":
            size = rng.randint(1, min(h, w))
            self.add(nn.AdaptiveAvgPool2d(size), [c, size, size])
        elif pick == "last_axis":  # a Linear on W; choosing W' == C sets the BatchNorm2d -> Linear trap
            out = rng.choice([c, w, 4])
            self.add(nn.Linear(w, out), [c, h, out])
        else:
            self.add(nn.Dropout(0.3), [c, h, w])

    def _conv2d(self) -> None:
        c, h, w = self.shape
        rng = self.rng
        out = rng.choice([4, 6, 8])
        kernel = rng.choice([k for k in (1, 2, 3) if k <= min(h, w)])
        pad = rng.choice([0, 1]) if min(h, w) > 1 else 0
        mode = rng.choice(["zeros", "reflect", "replicate", "circular"])
        stride, dilation = rng.choice([1, 1, 2]), rng.choice([1, 1, 2])
        if (kernel - 1) * dilation + 1 > min(h, w) + 2 * pad:
            dilation = 1
        groups = 2 if c % 2 == 0 and out % 2 == 0 and rng.random() < 0.4 else 1
        conv = nn.Conv2d(c, out, kernel, stride, pad, dilation, groups, rng.random() < 0.6, mode)
        size = [(s + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1 for s in (h, w)]
        self.add(conv, [out, *size])
        if rng.random() < 0.5:  # the usual Conv -> BN
            self.add(nn.BatchNorm2d(out), [out, *size])

    def sequence_op(self) -> None:
        """One op on (C, L)."""
        c, length = self.shape
        rng = self.rng
        pick = rng.choice(["bn", "bn", "linear", "trap", "conv", "maxpool", "avgpool", "pool2d", "relu"])
        if pick == "trap":  # Linear on L -> BatchNorm1d on (N, C, C) -> Linear on the last axis
            self.add(nn.Linear(length, c), [c, c])
            self.add(nn.BatchNorm1d(c), [c, c])
            self.add(nn.Linear(c, 5), [c, 5])
        elif pick == "bn":
            self.add(nn.BatchNorm1d(c), [c, length])
        elif pick == "linear":  # on L; L' == C makes a Linear -> BatchNorm1d trap, L == C a BN -> Linear one
            out = rng.choice([c, length, 5])
            self.add(nn.Linear(length, out), [c, out])
        elif pick == "conv" and length >= 2:
            out, pad = rng.choice([4, 6]), rng.choice([0, 1])
            conv = nn.Conv1d(c, out, 2, padding=pad, padding_mode=rng.choice(["zeros", "reflect"]))
            self.add(conv, [out, length + 2 * pad - 1])
        elif pick == "maxpool" and length >= 2:
            self.add(nn.MaxPool1d(2), [c, length // 2])
        elif pick == "avgpool" and length >= 2:
            self.add(nn.AvgPool1d(2), [c, length // 2])
        elif pick == "pool2d" and min(c, length) >= 2:  # sees (C, L) as one unbatched (H, W) image: mixes channels
            self.add(nn.AvgPool2d(2), [c // 2, length // 2])
        else:
            self.add(nn.ReLU(), [c, length])

    def head(self) -> None:
        """Flatten, then Linear/BN1d/ReLU on (F,), ending in 10 logits."""
        self.add(nn.Flatten(), [math.prod(self.shape)])
        for _ in range(self.rng.randint(1, 4)):
            (features,) = self.shape
            pick = self.rng.choice(["bn", "linear", "relu"])
            if pick == "bn":
                self.add(nn.BatchNorm1d(features), [features])
            elif pick == "linear":
                out = self.rng.choice([6, 12])
                self.add(nn.Linear(features, out), [out])
            else:
                self.add(nn.ReLU(), [features])
        self.add(nn.Linear(self.shape[0], 10), [10])


def _pooled(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    span = size + 2 * pad - kernel
    out = (span + (stride - 1 if ceil else 0)) // stride + 1
    return out - 1 if ceil and (out - 1) * stride >= size + pad else out


def _random_model(seed: int) -> tuple[nn.Sequential, tuple[int, int, int]]:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    stack = _Stack(rng)
    input_size = (stack.shape[0], stack.shape[1], stack.shape[2])
    if rng.random() < 0.3:
        stack.add(nn.BatchNorm2d(3), stack.shape)  # a BN on the raw input
    for _ in range(rng.randint(2, 6)):
        stack.image_op()
    if rng.random() < 0.5:
        stack.add(nn.Flatten(2), [stack.shape[0], stack.shape[1] * stack.shape[2]])
        for _ in range(rng.randint(1, 4)):
            stack.sequence_op()
    stack.head()
    model = nn.Sequential(*stack.layers)
    _random_statistics(model, torch.Generator().manual_seed(seed))
    return model, input_size


def _random_statistics(model: nn.Module, gen: torch.Generator) -> None:
    """Running mean in (-1, 1), var in (0.2, 2.2), gamma in (-1.5, 1.5) (negative scales), beta in (-1, 1)."""
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                n = bn.num_features
                bn.running_mean.copy_(torch.rand(n, generator=gen) * 2 - 1)
                bn.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.2)
                bn.weight.copy_(torch.rand(n, generator=gen) * 3 - 1.5)
                bn.bias.copy_(torch.rand(n, generator=gen) * 2 - 1)


def _fold_and_compare(seed: int) -> list[tuple[str, float, FoldReport]]:
    """(how the fold was called, max |folded - original|, report), with and without ``input_size``."""
    model, input_size = _random_model(seed)
    model.eval()
    x = torch.randn(4, *input_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = model(x)
    outcomes = []
    for size in (input_size, None):
        folded, report = fold_batchnorm(model, input_size=size)
        with torch.no_grad():
            outcomes.append((f"input_size={size}", float((folded(x) - expected).abs().max()), report))
    return outcomes


@pytest.fixture(scope="module")
def outcomes() -> dict[int, list[tuple[str, float, FoldReport]]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is several times faster on a busy machine
    try:
        return {seed: _fold_and_compare(seed) for seed in SEEDS}
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_stack_folds_to_the_same_output(seed, outcomes):
    for how, diff, report in outcomes[seed]:
        assert diff < 1e-5, f"seed {seed}, {how}: max diff {diff:.3g}\n{_random_model(seed)[0]}\n{report}"


def test_random_stacks_fold_some_and_keep_some(outcomes):
    """Guards the property test itself: the stacks exercise both outcomes, and both kinds of fold."""
    entries = [e for runs in outcomes.values() for _, _, report in runs for e in report.entries]
    directions = [e.direction for e in entries if e.action == "folded"]
    assert directions.count("forward") >= 20 and directions.count("backward") >= 20, directions
    assert sum(e.action == "kept" for e in entries) >= 40
