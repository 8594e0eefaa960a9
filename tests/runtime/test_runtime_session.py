"""Session: numbers, checked inputs (rejected before onnxruntime runs), predict, settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from runtime import InputError, Session


@pytest.fixture
def session(conv_model_path: Path) -> Session:
    return Session(conv_model_path)


@pytest.fixture
def guarded(session: Session, monkeypatch: pytest.MonkeyPatch) -> Session:
    """The session with onnxruntime's entry points replaced by a tripwire."""

    def tripwire(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("onnxruntime was called with input that should have been rejected")

    monkeypatch.setattr(session, "_run", tripwire)
    monkeypatch.setattr(session, "_intermediates", tripwire)
    return session


def _batch(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_run_matches_numpy_reference(session: Session, models: SimpleNamespace) -> None:
    batch = _batch(3, 3, 32, 32)
    logits = session.run(batch)
    assert logits.shape == (3, 10) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, models.reference_logits(batch, models.weights()), atol=1e-4)


def test_session_attributes(session: Session, conv_model_path: Path) -> None:
    assert session.path == conv_model_path
    assert session.provider == "cpu"
    assert session.providers_active == ["CPUExecutionProvider"]
    assert isinstance(session.inference_session, ort.InferenceSession)
    assert session.metadata.input_size == (3, 32, 32)
    assert session.layer_names() == ["conv1", "relu", "pool", "fc"]


def test_task1_conv_is_exact(save_model: Callable[..., Path], models: SimpleNamespace) -> None:
    image = np.array([[1, 0, 2, 3, 1], [3, 2, 0, 7, 0], [0, 6, 1, 1, 4]], dtype=np.float32)
    session = Session(save_model(models.sobel()))
    assert session.metadata.input_size == (1, 3, 5)  # no metadata: taken from the graph input
    out = session.run(image[None, None])
    expected = np.array([[2, -1, 11, -2, -13], [10, -4, 8, 2, -18], [14, -1, -5, 6, -9]], dtype=np.float32)
    np.testing.assert_array_equal(out[0, 0], expected)


@pytest.mark.parametrize(
    ("batch", "match"),
    [
        (_batch(1, 3, 32, 32).astype(np.float64), r"expected dtype float32, got float64"),
        (np.zeros((1, 3, 32, 32), np.uint8), r"expected dtype float32, got uint8; .*Session\.predict"),
        (_batch(1, 3, 32, 32).tolist(), r"expected a numpy float32 array of shape \(N, 3, 32, 32\), got list"),
        (_batch(3, 32, 32), r"expected a 4-D batch \(N, 3, 32, 32\) \(NCHW\), got 3-D shape \(3, 32, 32\)"),
        (
            _batch(1, 32, 32, 3),
            r"expected shape \(N, 3, 32, 32\) \(NCHW\), got \(1, 32, 32, 3\), which looks channels-last \(NHWC\); "
            r"transpose it to NCHW",
        ),
        (
            _batch(1, 1, 32, 32),
            r"expected 3 channels \(shape \(N, 3, 32, 32\)\), got 1 channels in shape \(1, 1, 32, 32\)",
        ),
        (_batch(1, 3, 64, 64), r"expected images of 32x32 \(H x W\) as exported, got 64x64 in shape \(1, 3, 64, 64\)"),
        (_batch(1, 3, 32, 16), r"expected images of 32x32 .*got 32x16"),
        (_batch(0, 3, 32, 32), r"expected at least one item"),
    ],
)
def test_bad_batches_are_rejected_before_onnxruntime(guarded: Session, batch: Any, match: str) -> None:
    with pytest.raises(InputError, match=match) as error:
        guarded.run(batch)
    assert "\n" not in str(error.value)
    assert isinstance(error.value, ValueError)
    with pytest.raises(InputError, match=match):
        guarded.intermediates(batch, ["conv1"])


def test_no_silent_reshape_of_flat_input(guarded: Session) -> None:
    with pytest.raises(InputError, match=r"4-D batch"):
        guarded.run(_batch(1, 3 * 32 * 32))


def test_pixel_range_input_warns_once(session: Session, caplog: pytest.LogCaptureFixture) -> None:
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 3, 32, 32)).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="runtime"):
        session.run(_batch(2, 3, 32, 32))
        assert not caplog.records  # normalized input: silent
        session.run(pixels)
        session.run(pixels)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "looks like raw 0..255 pixels" in warnings[0] and "Session.predict" in warnings[0]


def test_no_pixel_warning_without_normalization_metadata(
    save_model: Callable[..., Path], models: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    session = Session(save_model(models.conv(props={})))
    with caplog.at_level(logging.WARNING, logger="runtime.session"):
        session.run(np.full((1, 3, 32, 32), 200.0, np.float32))
    assert not [r for r in caplog.records if r.name == "runtime.session"]


def test_predict_preprocesses_and_batches(session: Session, images: list[np.ndarray]) -> None:
    predicted = session.predict(images, batch_size=2)
    assert predicted.shape == (5,) and predicted.dtype == np.int64
    expected = np.argmax(session.run(session.preprocess(images)), axis=1)
    np.testing.assert_array_equal(predicted, expected)
    np.testing.assert_array_equal(session.predict(images), predicted)


def test_preprocess_uses_metadata(session: Session, models: SimpleNamespace) -> None:
    batch = session.preprocess([np.full((50, 70, 3), 255, np.uint8)])
    assert batch.shape == (1, 3, 32, 32) and batch.dtype == np.float32
    for channel in range(3):
        np.testing.assert_allclose(batch[0, channel], (1.0 - models.mean[channel]) / models.std[channel], rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"batch_size": 0}, r"batch_size must be a positive int, got 0"), ({"batch_size": 2.5}, r"got 2.5")],
)
def test_predict_bad_arguments(guarded: Session, images: list[np.ndarray], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        guarded.predict(images, **kwargs)


def test_predict_single_image_without_list(guarded: Session) -> None:
    with pytest.raises(InputError, match=r"wrap a single image in a list"):
        guarded.predict(np.zeros((32, 32, 3), np.uint8))


def test_settings_are_applied(conv_model_path: Path) -> None:
    session = Session(conv_model_path, intra_op_threads=1, inter_op_threads=1, graph_optimization="basic")
    options = session.inference_session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert session.settings["intra_op_threads"] == 1 and session.settings["spin_wait"] is False
    assert session.settings["graph_optimization"] == "basic"
    assert session.settings["providers"] == ["CPUExecutionProvider"]


def test_spin_wait_leaves_spinning_on(conv_model_path: Path) -> None:
    session = Session(conv_model_path, spin_wait=True, graph_optimization="disable")
    options = session.inference_session.get_session_options()
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert session.settings["config_entries"] == {} and session.settings["intra_op_threads"] is None
    batch = _batch(1, 3, 32, 32)
    np.testing.assert_allclose(session.run(batch), Session(conv_model_path).run(batch), atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"graph_optimization": "max"},
            r"unknown graph_optimization 'max': expected one of \['disable', 'basic', 'extended', 'all'\]",
        ),
        ({"intra_op_threads": 0}, r"intra_op_threads must be a positive int or None"),
        ({"inter_op_threads": True}, r"inter_op_threads must be a positive int or None"),
    ],
)
def test_bad_options(conv_model_path: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        Session(conv_model_path, **kwargs)
