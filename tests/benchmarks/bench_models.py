"""Tiny torch models for the benchmarks tests, and a loader the torch memory child can import."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from benchmarks.record import BenchResult
from runtime import Session

Cifar = tuple[np.ndarray, np.ndarray]  # uint8 (N, 3, 32, 32) images, int64 (N,) labels

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


class PooledNet(nn.Module):
    """conv -> relu -> global average pool -> linear: accepts any input size."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x)).mean(dim=(2, 3))  # (N, 4)
        return self.fc(x)  # (N, 10)


def make_tiny(seed: int = 0) -> TinyNet:
    """A seeded TinyNet in eval mode."""
    torch.manual_seed(seed)
    return TinyNet().eval()


def export_tiny(model: nn.Module, path: Path, input_size: tuple[int, int, int] = INPUT_SIZE) -> Path:
    """Export with the dynamo exporter (input "input", output "logits", dynamic batch) plus toolkit metadata."""
    torch.onnx.export(
        model, (torch.zeros(2, *input_size),), os.fspath(path), dynamo=True, opset_version=18,
        input_names=["input"], output_names=["logits"], dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
        verbose=False,
    )
    proto = onnx.load(os.fspath(path))
    props = {
        "toolkit.model": "tiny", "toolkit.input_size": json.dumps(list(input_size)),
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


class Recorder(nn.Module):
    """Wraps a model and records, per forward, when it ran, torch's thread count and the batch size."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[tuple[int, int, int]] = []  # (perf_counter_ns, torch threads, batch)
        self.inference_mode: list[bool] = []  # per forward: was torch.inference_mode on

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((time.perf_counter_ns(), torch.get_num_threads(), int(x.shape[0])))
        self.inference_mode.append(torch.is_inference_mode_enabled())
        return self.inner(x)


@dataclass
class BenchRun:
    """One instrumented ``run_benchmark`` call shared by the tests that read its result."""

    result: BenchResult
    forwards: list[tuple[int, int, int]]
    sessions: list[tuple[int, Session]] = field(default_factory=list)  # (created at ns, session)
    progress: list[tuple[str, int, int]] = field(default_factory=list)
    threads_after: int = 0
    kwargs: dict[str, Any] = field(default_factory=dict)
    inference_mode: list[bool] = field(default_factory=list)  # per torch forward
