"""Tiny models the exporter tests share (imported as ``tiny_models``: pytest puts this folder on sys.path)."""
from __future__ import annotations

from torch import nn


def network1(blocks: int, channels: tuple[int, ...] = (3, 8, 16, 16), side: int = 16) -> nn.Sequential:
    """Network 1's shape, small: ``blocks`` x (Conv 5x5 pad 2, ReLU, BatchNorm2d, MaxPool 2), Flatten,
    Linear 12, ReLU, BatchNorm1d, Linear 10 -- BatchNorm after the ReLU, as the study orders it."""
    layers: list[nn.Module] = []
    widths = channels[: blocks + 1]
    for c_in, c_out in zip(widths, widths[1:]):
        layers += [nn.Conv2d(c_in, c_out, 5, padding=2), nn.ReLU(), nn.BatchNorm2d(c_out), nn.MaxPool2d(2)]
    out_side = side // 2**blocks
    layers += [nn.Flatten(), nn.Linear(widths[-1] * out_side * out_side, 12), nn.ReLU(), nn.BatchNorm1d(12),
               nn.Linear(12, 10)]
    return nn.Sequential(*layers)


def conv_bn_mlp(conv_bias: bool) -> nn.Sequential:
    """Conv-BN-ReLU-Flatten-Linear-BN1d-Linear on 3x8x8 input: every BatchNorm folds backward."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=conv_bias),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 6 * 6, 16),
        nn.BatchNorm1d(16),
        nn.Linear(16, 4),
    )
