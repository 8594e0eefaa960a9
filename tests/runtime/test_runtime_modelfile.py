"""Bad model files fail with one line naming the path, the size and the likely cause.

Opening a model does not need the onnx package: external-data checks run with onnx when it is
installed and otherwise come from onnxruntime's own refusal, so those tests run both ways.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import helper

from runtime import ModelFileError, Session, load_metadata
from runtime.modelfile import load_model_proto

LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 1234567\n"
)


@pytest.fixture(params=["with onnx", "without onnx"])
def onnx_installed(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run the test as is, and again with ``import onnx`` failing inside the runtime."""
    if request.param == "without onnx":
        monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    return request.param == "with onnx"


def _assert_one_line(error: pytest.ExceptionInfo[ModelFileError], path: Path) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message
    assert "Traceback" not in message


def test_missing_path_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "model.onnx"
    with pytest.raises(ModelFileError, match=r"does not exist; check the path") as error:
        Session(path)
    _assert_one_line(error, path)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"is not a regular file"):
        load_model_proto(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"is empty \(0 bytes\); the export or download was interrupted") as error:
        Session(path)
    _assert_one_line(error, path)


def test_git_lfs_pointer(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_text(LFS_POINTER)
    size = path.stat().st_size
    assert 120 <= size <= 140  # what a real pointer weighs
    with pytest.raises(ModelFileError, match=rf"\({size} bytes\) is a Git LFS pointer") as error:
        Session(path)
    assert "fetch the real file (git lfs pull)" in str(error.value)
    assert "1234567-byte file" in str(error.value)
    _assert_one_line(error, path)


def test_half_truncated_export(tmp_path: Path, conv_model_path: Path) -> None:
    data = conv_model_path.read_bytes()
    path = tmp_path / "half.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=rf"\({len(data) // 2} bytes\).*truncated or not an ONNX model") as error:
        Session(path)
    _assert_one_line(error, path)
    with pytest.raises(ModelFileError, match="truncated"):
        load_metadata(path)


@pytest.mark.parametrize("cut", [0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
def test_truncated_at_any_point(tmp_path: Path, conv_model_path: Path, cut: float) -> None:
    data = conv_model_path.read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * cut)])
    # Cut at a field boundary protobuf may parse it; then onnxruntime's failure is wrapped instead.
    with pytest.raises(ModelFileError, match=r"bytes\).*(truncated|no ONNX graph)"):
        Session(path)


def test_text_file_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("these are not the weights you are looking for\n" * 3)
    with pytest.raises(ModelFileError, match=r"bytes\).*not an ONNX model"):
        Session(path)


def test_html_page_saved_as_model(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_text("<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n")
    expected = rf"\({path.stat().st_size} bytes\) holds text, not an ONNX model \(it starts with '<!DOCTYPE html>'\)"
    with pytest.raises(ModelFileError, match=expected) as error:
        load_metadata(path)
    assert "re-export or re-download it" in str(error.value)
    _assert_one_line(error, path)


def test_graph_without_inputs(save_model: Callable[..., Path]) -> None:
    value = onnx.numpy_helper.from_array(np.zeros((1, 10), dtype=np.float32))
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["logits"], value=value)],
        "constant",
        [],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, 10])],
    )
    path = save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    with pytest.raises(ModelFileError, match=r"bytes\) holds no ONNX graph \(no inputs or no outputs\)") as error:
        Session(path)
    _assert_one_line(error, path)


def test_onnxruntime_failure_is_wrapped(save_model: Callable[..., Path]) -> None:
    graph = helper.make_graph(
        [helper.make_node("NoSuchOperator", ["input"], ["logits"])],
        "bad",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = save_model(model)
    expected = r"onnxruntime could not load model file .*NoSuchOperator.*truncated, corrupt or not an ONNX model"
    with pytest.raises(ModelFileError, match=expected) as error:
        Session(path)
    _assert_one_line(error, path)


def _with_external_weights(model: onnx.ModelProto, location: str, data_file: Path) -> onnx.ModelProto:
    """Point the conv weight at external data ``location`` and write its bytes to ``data_file``."""
    tensor = next(t for t in model.graph.initializer if t.name == "conv1.weight")
    data_file.parent.mkdir(parents=True, exist_ok=True)
    data_file.write_bytes(tensor.raw_data or onnx.numpy_helper.to_array(tensor).tobytes())
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    return model


@pytest.mark.parametrize("location", ["../outside.bin", "ABSOLUTE"])
def test_external_data_outside_folder_is_refused(
    tmp_path: Path, save_model: Callable[..., Path], models: SimpleNamespace, location: str, onnx_installed: bool
) -> None:
    outside = tmp_path / "outside.bin"
    location = str(outside) if location == "ABSOLUTE" else location
    path = save_model(_with_external_weights(models.conv(), location, outside), "sub/model.onnx")
    with pytest.raises(ModelFileError, match=r"bytes\) stores tensor 'conv1.weight' in external data .*outside") as err:
        Session(path)
    _assert_one_line(err, path)
    assert f"outside the model's folder {path.resolve().parent}; refusing to read it" in str(err.value)
    if location == "../outside.bin" or onnx_installed:  # onnxruntime does not quote an absolute location
        assert f"at '{location}'" in str(err.value)


def test_external_data_inside_folder_works(
    tmp_path: Path, save_model: Callable[..., Path], models: SimpleNamespace, onnx_installed: bool
) -> None:
    model = _with_external_weights(models.conv(), "weights.bin", tmp_path / "sub" / "weights.bin")
    path = save_model(model, "sub/m.onnx")
    batch = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    logits = Session(path).run(batch)
    np.testing.assert_allclose(logits, models.reference_logits(batch, models.weights()), atol=1e-4)
    if onnx_installed:  # intermediates edits the graph, which needs onnx
        # intermediates re-serializes the model, so the external weights must be inlined first
        assert Session(path).intermediates(batch, ["conv1"])["conv1"].shape == (2, 4, 32, 32)


def test_missing_external_data_file(
    tmp_path: Path, save_model: Callable[..., Path], models: SimpleNamespace, onnx_installed: bool
) -> None:
    path = save_model(_with_external_weights(models.conv(), "weights.bin", tmp_path / "elsewhere.bin"), "sub/m.onnx")
    expected = "needs external data file 'weights.bin' for tensor 'conv1.weight', which is missing from"
    with pytest.raises(ModelFileError, match=re.escape(expected)) as error:
        Session(path)
    _assert_one_line(error, path)
