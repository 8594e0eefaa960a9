import json

import pytest
import torch

from toolkit.checkpoint import load_checkpoint, save_checkpoint
from toolkit.config import make_config
from toolkit.errors import CheckpointError, ConfigError
from toolkit.data import CIFAR10_MEAN, CIFAR10_STD
from toolkit.models import CIFAR10_CLASSES, get_model


def _save(path, model, name="net1", args=None):
    return save_checkpoint(path, model, name=name, model_args=args or {}, input_size=(3, 32, 32),
                           mean=CIFAR10_MEAN, std=CIFAR10_STD, classes=CIFAR10_CLASSES,
                           config=make_config(name).to_dict(), metrics={"test_accuracy": 0.5})


def test_round_trip_is_self_describing(tmp_path):
    torch.manual_seed(0)
    model = get_model("net1", activation="tanh")
    model.eval()
    path = _save(tmp_path / "run" / "checkpoint.pt", model, args={"activation": "tanh"})
    raw = torch.load(path, weights_only=True)  # must load without unpickling code
    assert raw["model"] == "net1" and raw["classes"] == list(CIFAR10_CLASSES) and raw["format_version"] == 1
    ckpt = load_checkpoint(path)
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(ckpt.model(x), model(x))
    assert not ckpt.model.training
    assert ckpt.export_metadata()["mean"] == list(CIFAR10_MEAN)
    assert not list(path.parent.glob(".*.tmp"))  # nothing half-written left behind


@pytest.mark.parametrize("content, match", [
    (b"", r"\(0 bytes\) is not a toolkit checkpoint \(the file is empty\)"),
    (b"hello, not a checkpoint", r"\(23 bytes\) is not a toolkit checkpoint \(it starts with b'hello, n', not the zip "
                                 r"header torch.save writes\)"),
    (b"PK\x03\x04 a broken zip", r"is not a toolkit checkpoint \(torch.load: "),
])
def test_not_a_checkpoint(tmp_path, content, match):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_missing_and_unknown_version(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    path = _save(tmp_path / "c.pt", get_model("net1"))
    raw = torch.load(path, weights_only=True)
    raw["format_version"] = 99
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path)
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="missing format_version"):
        load_checkpoint(path)


def test_config_rejects_unknown_and_bad_options():
    with pytest.raises(ConfigError, match="unknown training option"):
        make_config("task2", learning_rate=0.1)
    with pytest.raises(ConfigError, match="unknown optimizer 'rmsprop'"):
        make_config("task2", optimizer="rmsprop")
    with pytest.raises(ConfigError, match="epochs must be at least 1"):
        make_config("task2", epochs=0)
    cfg = make_config("net2", lr=None, epochs=3)
    assert (cfg.lr, cfg.step_size, cfg.gamma, cfg.early_stopping, cfg.epochs) == (0.1, 4, 0.25, False, 3)
    assert json.loads(json.dumps(cfg.to_dict()))["model"] == "net2"
