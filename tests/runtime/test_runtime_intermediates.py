"""Session.intermediates: named layer outputs from a cached second session with extra graph outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from runtime import InputError, ModelFileError, Session, UnknownLayerError


@pytest.fixture
def session(conv_model_path: Path) -> Session:
    return Session(conv_model_path, intra_op_threads=1, graph_optimization="extended")


@pytest.fixture
def batch() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(2, 3, 32, 32)).astype(np.float32)


def test_requested_tensors_have_the_right_shapes_and_values(session: Session, batch: np.ndarray) -> None:
    out = session.intermediates(batch, ["conv1", "relu", "pool", "fc"])
    assert list(out) == ["conv1", "relu", "pool", "fc"]
    assert out["conv1"].shape == (2, 4, 32, 32)
    assert out["relu"].shape == (2, 4, 32, 32)
    assert out["pool"].shape == (2, 4, 1, 1)
    assert out["fc"].shape == (2, 10)
    np.testing.assert_allclose(out["relu"], np.maximum(out["conv1"], 0), atol=1e-6)
    np.testing.assert_allclose(out["pool"][:, :, 0, 0], out["relu"].mean(axis=(2, 3)), atol=1e-5)
    np.testing.assert_allclose(out["fc"], session.run(batch), atol=1e-6)


def test_logits_are_unchanged_by_the_extra_outputs(session: Session, batch: np.ndarray) -> None:
    extended = session._intermediate_session(["conv1", "pool"])
    assert [o.name for o in extended.get_outputs()] == ["logits", "conv1_out", "pool_out"]
    assert extended.get_outputs()[1].shape == ["batch", 4, 32, 32]  # typed by onnx shape inference
    (logits,) = extended.run(["logits"], {"input": batch})
    np.testing.assert_array_equal(logits, session.run(batch))


def test_sessions_are_cached_per_set_of_names(session: Session, batch: np.ndarray) -> None:
    first = session._intermediate_session(["relu", "conv1"])
    session.intermediates(batch, ["conv1", "relu"])
    assert session._intermediate_session(["conv1", "relu"]) is first
    assert session._intermediate_session(["conv1"]) is not first
    assert len(session._layer_sessions) == 2


def test_cached_sessions_keep_provider_and_options(session: Session) -> None:
    extended = session._intermediate_session(["conv1"])
    assert extended.get_providers() == session.providers_active
    options = extended.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.graph_optimization_level == session.inference_session.get_session_options().graph_optimization_level


def test_unknown_layer_lists_valid_names(session: Session, batch: np.ndarray) -> None:
    expected = r"unknown layer names \['layer9'\]: expected names from \['conv1', 'relu', 'pool', 'fc'\]"
    with pytest.raises(UnknownLayerError, match=expected):
        session.intermediates(batch, ["conv1", "layer9"])
    assert session._layer_sessions == {}  # nothing was built for a bad request


def test_single_name_string_and_empty_list(session: Session, batch: np.ndarray) -> None:
    assert list(session.intermediates(batch, "pool")) == ["pool"]
    with pytest.raises(InputError, match=r"expected at least one layer name, got none"):
        session.intermediates(batch, [])


def test_model_without_layers(save_model: Callable[..., Path], models: SimpleNamespace, batch: np.ndarray) -> None:
    session = Session(save_model(models.conv(props=models.props(layers=None))))
    assert session.layer_names() == []
    with pytest.raises(UnknownLayerError, match=r"records no layers \(toolkit.layers is empty\)"):
        session.intermediates(batch, ["conv1"])


def test_layers_naming_absent_tensors(
    save_model: Callable[..., Path], models: SimpleNamespace, batch: np.ndarray
) -> None:
    session = Session(save_model(models.conv(props=models.props(layers={"conv1": "no_such_tensor"}))))
    with pytest.raises(ModelFileError, match=r"names tensors \['no_such_tensor'\] that are not in the graph"):
        session.intermediates(batch, ["conv1"])
