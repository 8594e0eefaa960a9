"""Checkpoints built in the test: registry models with known weights, saved as 'toolkit train' would."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from toolkit.checkpoint import save_checkpoint
from toolkit.config import make_config
from toolkit.data import CIFAR10_MEAN, CIFAR10_STD
from toolkit.models import CIFAR10_CLASSES, get_model


def net1_with_running_stats(seed: int = 0) -> nn.Module:
    """Network 1 (eval mode) whose BatchNorms have non-trivial running stats and a positive scale.

    A positive scale lets a BN fold forward through ReLU-free paths (MaxPool, Flatten) into the next
    Conv/Linear; the BNs before a zero-padded Conv must still be kept (padding breaks the equivalence).
    """
    torch.manual_seed(seed)
    model = get_model("net1")
    g = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=g) * 0.5)  # (n,)
            module.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.2)  # (n,), away from 0
            module.weight.data.copy_(torch.rand(n, generator=g) + 0.5)  # (n,), positive scale
            module.bias.data.copy_(torch.randn(n, generator=g) * 0.3)
    return model.eval()


def save_net1_checkpoint(path: Path, model: nn.Module) -> Path:
    """``model`` saved as a net1 checkpoint with the CIFAR-10 facts."""
    return save_checkpoint(path, model, name="net1", model_args={}, input_size=(3, 32, 32),
                           mean=CIFAR10_MEAN, std=CIFAR10_STD, classes=CIFAR10_CLASSES,
                           config=make_config("net1").to_dict(), metrics={})
