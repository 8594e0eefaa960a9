"""Tiny ONNX models built with onnx.helper, shaped like the exporters' output (no torch needed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

CIFAR_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR_STD = [0.247, 0.2435, 0.2616]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
LAYERS = {"conv1": "conv1_out", "relu": "relu_out", "pool": "pool_out", "fc": "logits"}


def conv_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Weights of the tiny classifier: conv 3->4 (3x3, pad 1) -> relu -> global pool -> linear 4->10."""
    rng = np.random.default_rng(seed)
    return {
        "conv1.weight": rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32),
        "conv1.bias": rng.normal(0, 0.1, (4,)).astype(np.float32),
        "fc.weight": rng.normal(0, 0.5, (10, 4)).astype(np.float32),
        "fc.bias": rng.normal(0, 0.1, (10,)).astype(np.float32),
    }


def reference_logits(batch: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    """The tiny classifier in plain numpy (float64), to check onnxruntime's numbers."""
    x = np.pad(batch.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))  # (N, 3, H+2, W+2)
    n, _, h, w = batch.shape
    conv = np.zeros((n, 4, h, w))
    for dy in range(3):
        for dx in range(3):
            patch = x[:, :, dy : dy + h, dx : dx + w]  # (N, 3, H, W)
            conv += np.einsum("nchw,oc->nohw", patch, weights["conv1.weight"][:, :, dy, dx])
    conv += weights["conv1.bias"][None, :, None, None]
    pooled = np.maximum(conv, 0).mean(axis=(2, 3))  # (N, 4)
    return pooled @ weights["fc.weight"].T + weights["fc.bias"]


def toolkit_props(**overrides: Any) -> dict[str, str]:
    """The toolkit.* metadata an export writes; a value of None drops that key."""
    values: dict[str, Any] = {
        "model": "tiny",
        "input_size": [3, 32, 32],
        "mean": CIFAR_MEAN,
        "std": CIFAR_STD,
        "classes": CLASSES,
        "version": "0.1.0",
        "layers": LAYERS,
        "export": {"opset": 18, "folded": [], "kept": []},
    }
    values.update(overrides)
    return {
        f"toolkit.{key}": value if isinstance(value, str) else json.dumps(value)
        for key, value in values.items()
        if value is not None
    }


def build_conv_model(
    props: dict[str, str] | None = None, size: tuple[int, int] = (32, 32), seed: int = 0
) -> onnx.ModelProto:
    """The tiny classifier as an ONNX model: input `input` [batch, 3, H, W] -> output `logits` [batch, 10]."""
    weights = conv_weights(seed)
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["conv1_out"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv1_out"], ["relu_out"]),
        helper.make_node("GlobalAveragePool", ["relu_out"], ["pool_out"]),
        helper.make_node("Flatten", ["pool_out"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, *size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(array, name) for name, array in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9  # readable by any onnxruntime of the last years (the gpu venv may be older)
    helper.set_model_props(model, toolkit_props() if props is None else props)
    onnx.checker.check_model(model)
    return model


def build_sobel_model() -> onnx.ModelProto:
    """Task 1: one Conv, no bias, kernel [[-1,0,1],[-2,0,2],[-1,0,1]], pad 1, on a 1x3x5 image."""
    kernel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32).reshape(1, 1, 3, 3)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "kernel"], ["logits"], pads=[1, 1, 1, 1])],
        "sobel",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 3, 5])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1, 3, 5])],
        [numpy_helper.from_array(kernel, "kernel")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


@pytest.fixture
def save_model(tmp_path: Path) -> Callable[..., Path]:
    """save_model(model, name="model.onnx") -> path of the written file under tmp_path."""

    def save(model: onnx.ModelProto, name: str = "model.onnx") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, path)
        return path

    return save


@pytest.fixture
def conv_model_path(save_model: Callable[..., Path]) -> Path:
    """The tiny classifier with full toolkit metadata, saved to a temporary file."""
    return save_model(build_conv_model())


@pytest.fixture
def images() -> list[np.ndarray]:
    """Five uint8 images of mixed sizes and layouts: RGB, gray 2-D, RGBA, gray (H, W, 1)."""
    rng = np.random.default_rng(7)
    shapes = [(32, 32, 3), (40, 56, 3), (24, 24), (33, 17, 4), (64, 64, 1)]
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in shapes]


@pytest.fixture
def models() -> SimpleNamespace:
    """The builders above as a fixture, so test modules need no import of this conftest."""
    return SimpleNamespace(
        conv=build_conv_model,
        sobel=build_sobel_model,
        props=toolkit_props,
        weights=conv_weights,
        reference_logits=reference_logits,
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
        classes=CLASSES,
        layers=LAYERS,
    )
