"""Tiny torch models for the benchmarks tests, and a loader the torch memory child can import."""

from __future__ import annotations

import json
import os
from pathlib import Path

import onnx
import torch
from torch import nn

INPUT_SIZE = (3, 32, 32)
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.247, 0.2435, 0.2616)
# Hand count for TinyNet at 32x32 (MACs = output elements * C_in/group * kH * kW; linear = in * out):
#   conv1 3->8, 3x3, stride 2, pad 1:  8*16*16 = 2048 outputs * 3*3*3 = 27   -> 55,296
#   conv2 8->8, 3x3, pad 1, groups 4:  8*16*16 = 2048 outputs * 2*3*3 = 18   -> 36,864
#   fc 2048->10:                       2048 * 10                             -> 20,480
TINY_MACS = 55_296 + 36_864 + 20_480


class TinyNet(nn.Module):
    """conv (stride 2) -> relu -> grouped conv -> relu -> flatten -> linear; ~3k parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=4)
        self.fc = nn.Linear(8 * 16 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))  # (N, 8, 16, 16)
        x = torch.relu(self.conv2(x))  # (N, 8, 16, 16)
        return self.fc(torch.flatten(x, 1))  # (N, 10)


def make_tiny(seed: int = 0) -> TinyNet:
    """A seeded TinyNet in eval mode."""
    torch.manual_seed(seed)
    return TinyNet().eval()


def export_tiny(model: nn.Module, path: Path) -> Path:
    """Export with the dynamo exporter (input "input", output "logits", dynamic batch) plus toolkit metadata."""
    torch.onnx.export(
        model, (torch.zeros(2, *INPUT_SIZE),), os.fspath(path), dynamo=True, opset_version=18,
        input_names=["input"], output_names=["logits"], dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
        verbose=False,
    )
    proto = onnx.load(os.fspath(path))
    props = {
        "toolkit.model": "tiny", "toolkit.input_size": json.dumps(list(INPUT_SIZE)),
        "toolkit.mean": json.dumps(list(MEAN)), "toolkit.std": json.dumps(list(STD)),
        "toolkit.classes": json.dumps([f"c{i}" for i in range(10)]), "toolkit.version": "0.1.0",
        "toolkit.export": json.dumps({"opset": 18, "folded": [], "kept": []}),
    }
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, os.fspath(path))
    return path


def load_tiny(checkpoint: str) -> TinyNet:
    """Loader for ``python -m benchmarks.memory --engine torch --loader bench_models:load_tiny``."""
    model = TinyNet()
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return model.eval()
