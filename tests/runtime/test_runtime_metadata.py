"""ModelMetadata: the toolkit.* props, and fallbacks derived from the graph when they are missing."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from runtime import InputError, ModelFileError, ModelMetadata, Session, load_metadata


def test_full_metadata_is_parsed(conv_model_path: Path, models: SimpleNamespace) -> None:
    meta = load_metadata(conv_model_path)
    assert isinstance(meta, ModelMetadata)
    assert meta.model == "tiny"
    assert meta.input_size == (3, 32, 32)
    assert meta.mean == tuple(models.mean)
    assert meta.std == tuple(models.std)
    assert meta.classes == tuple(models.classes)
    assert meta.layers == models.layers
    assert meta.export == {"opset": 18, "folded": [], "kept": []}
    assert meta.version == "0.1.0"
    assert meta.fallbacks == ()
    assert meta.normalized


def test_metadata_is_frozen(conv_model_path: Path) -> None:
    meta = load_metadata(conv_model_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.model = "other"  # type: ignore[misc]


def test_missing_props_fall_back_to_the_graph(
    save_model: Callable[..., Path], models: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    path = save_model(models.conv(props={}, size=(24, 40)))
    with caplog.at_level(logging.WARNING, logger="runtime"):
        meta = load_metadata(path)
    assert meta.input_size == (3, 24, 40)  # from the graph input [batch, 3, 24, 40]
    assert meta.mean == (0.0, 0.0, 0.0) and meta.std == (1.0, 1.0, 1.0)
    assert meta.classes == tuple(str(i) for i in range(10))  # from the output [batch, 10]
    assert meta.model == "tiny"  # the graph's name
    assert meta.layers == {} and meta.export == {} and meta.version == ""
    assert set(meta.fallbacks) == {"input_size", "mean", "std", "classes", "layers", "export", "model", "version"}
    assert not meta.normalized
    assert any("no toolkit.mean/toolkit.std" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_single_value_mean_is_broadcast(save_model: Callable[..., Path], models: SimpleNamespace) -> None:
    meta = load_metadata(save_model(models.conv(props=models.props(mean=[0.5], std=[0.25]))))
    assert meta.mean == (0.5, 0.5, 0.5) and meta.std == (0.25, 0.25, 0.25)


def test_json_encoded_plain_strings_are_tolerated(save_model: Callable[..., Path], models: SimpleNamespace) -> None:
    meta = load_metadata(save_model(models.conv(props=models.props(model='"task2"'))))
    assert meta.model == "task2"


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"mean": "[0.5, 0.5"}, r"toolkit.mean is not valid JSON"),
        ({"mean": [0.1, 0.2]}, r"toolkit.mean is \[0.1, 0.2\]: expected a list of 3 numbers"),
        ({"std": [0.1, 0.0, 0.2]}, r"toolkit.std is .*expected non-zero values"),
        ({"input_size": [3, 32]}, r"toolkit.input_size is \[3, 32\]: expected \[C, H, W\]"),
        ({"layers": ["conv1"]}, r"toolkit.layers is list: expected a JSON object"),
    ],
)
def test_bad_metadata_is_reported(
    save_model: Callable[..., Path], models: SimpleNamespace, override: dict[str, object], match: str
) -> None:
    path = save_model(models.conv(props=models.props(**override)))
    with pytest.raises(ModelFileError, match=match):
        load_metadata(path)


def test_free_height_and_width_leave_input_size_unknown(
    save_model: Callable[..., Path], models: SimpleNamespace
) -> None:
    path = save_model(models.conv(props=models.props(input_size=None), size=("height", "width")))
    assert load_metadata(path).input_size is None  # graph input [batch, 3, height, width]
    session = Session(path)
    assert session._expected == (3, None, None)
    assert session.run(np.zeros((1, 3, 8, 12), dtype=np.float32)).shape == (1, 10)
    with pytest.raises(InputError, match=r"has no fixed input size"):
        session.predict([np.zeros((8, 8, 3), dtype=np.uint8)])
