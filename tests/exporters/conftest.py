"""Tiny models and seeded inputs shared by the exporters tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn


def _randomize_batchnorms(model: nn.Module, seed: int = 0, positive_scale: bool = False) -> nn.Module:
    """Give every BN non-trivial running stats (mean in (-1, 1), var in (0.5, 2)) and affine params."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
                n = module.num_features
                module.running_mean.copy_(torch.rand(n, generator=gen) * 2 - 1)
                module.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                if module.affine:
                    weight = torch.rand(n, generator=gen) * 2 - 1
                    module.weight.copy_(weight.abs() + 0.2 if positive_scale else weight)
                    module.bias.copy_(torch.rand(n, generator=gen) * 2 - 1)
    return model


@pytest.fixture
def randomize() -> Callable[..., nn.Module]:
    """``randomize(model, seed=0, positive_scale=False)``: non-trivial BN statistics, in place."""
    return _randomize_batchnorms


@pytest.fixture
def make_metadata() -> Callable[..., dict[str, object]]:
    """Metadata for ``export_onnx`` with ``num_classes`` classes and ``channels`` channels."""

    def make(num_classes: int = 10, channels: int = 3) -> dict[str, object]:
        return {
            "model": "tiny",
            "mean": [0.5] * channels,
            "std": [0.25] * channels,
            "classes": [f"class{i}" for i in range(num_classes)],
            "version": "0.1.0",
        }

    return make


@pytest.fixture
def images() -> np.ndarray:
    """Seeded normalized-looking float32 (8, 3, 16, 16) images."""
    return np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
