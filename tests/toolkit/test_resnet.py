"""build_resnet18: ImageNet weights through torchvision's cache, a state dict strictly, or none; frozen backbone."""
from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torch.hub
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18
from torchvision.models._api import WeightsEnum

from toolkit.errors import ConfigError
from toolkit.resnet import build_resnet18, imagenet_weights_path


@pytest.fixture
def torch_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """An empty torch cache under tmp_path; any download attempt is recorded and fails as offline would."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a set_dir() elsewhere would override TORCH_HOME
    attempts: list[str] = []

    def offline(url: str, dst: str, *args: object, **kwargs: object) -> None:
        attempts.append(url)
        raise URLError("network is unreachable (test)")

    # torch.hub.load_state_dict_from_url looks this name up in its module at call time
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return attempts


def _imagenet_like(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return resnet18(weights=None, num_classes=1000).state_dict()


def test_imagenet_weights_path_is_in_the_torch_home_cache(torch_cache: list[str], tmp_path: Path) -> None:
    path = imagenet_weights_path()
    assert path.parent == tmp_path / "torch" / "hub" / "checkpoints"
    assert path.name.startswith("resnet18-") and path.suffix == ".pth"


def test_imagenet_weights_load_from_torchvisions_cache(torch_cache: list[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    state = _imagenet_like()
    cached = imagenet_weights_path()
    cached.parent.mkdir(parents=True)
    torch.save(state, cached)
    calls: list[dict[str, object]] = []
    original = WeightsEnum.get_state_dict

    def spy(self: WeightsEnum, *args: object, **kwargs: object) -> object:
        calls.append({"weights": self, **kwargs})
        return original(self, *args, **kwargs)

    monkeypatch.setattr(WeightsEnum, "get_state_dict", spy)
    model = build_resnet18(weights="imagenet")
    assert [c["weights"] for c in calls] == [ResNet18_Weights.IMAGENET1K_V1]  # torchvision's own loader
    assert calls[0]["weights_only"] is True
    assert torch_cache == []  # read from the cache, no download attempted
    loaded = model.state_dict()
    for key in ("conv1.weight", "bn1.running_var", "layer4.1.conv2.weight"):
        assert torch.equal(loaded[key], state[key]), key
    assert model.fc.out_features == 10 and model.fc.in_features == 512  # the ImageNet head is replaced


def test_imagenet_offline_without_cache_is_one_error_naming_the_fix(torch_cache: list[str]) -> None:
    cached = imagenet_weights_path()
    with pytest.raises(ConfigError, match=r"not in torchvision's cache") as info:
        build_resnet18(weights="imagenet")
    message = str(info.value)
    assert str(cached) in message and "--weights PATH" in message and "\n" not in message
    assert len(torch_cache) == 1 and torch_cache[0].endswith(cached.name)  # the online path is still tried
    assert not cached.exists()


def test_imagenet_cache_file_that_is_not_a_state_dict(torch_cache: list[str]) -> None:
    cached = imagenet_weights_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match=r"cached ImageNet weights .* cannot be read .*delete the file") as info:
        build_resnet18(weights="imagenet")
    assert str(cached) in str(info.value) and torch_cache == []


def test_state_dict_path_loads_strictly(tmp_path: Path) -> None:
    state = _imagenet_like(seed=1)
    file = tmp_path / "weights.pt"
    torch.save(state, file)
    model = build_resnet18(weights=str(file))
    assert torch.equal(model.state_dict()["layer3.0.downsample.0.weight"], state["layer3.0.downsample.0.weight"])
    assert model.fc.out_features == 10


def test_state_dict_with_a_ten_class_head_keeps_it(tmp_path: Path) -> None:
    torch.manual_seed(2)
    state = resnet18(weights=None, num_classes=10).state_dict()
    file = tmp_path / "ten.pt"
    torch.save({"format_version": 1, "state_dict": state}, file)  # a toolkit checkpoint works too
    model = build_resnet18(weights=str(file))
    assert torch.equal(model.fc.weight, state["fc.weight"])


def test_state_dict_missing_and_unexpected_keys(tmp_path: Path) -> None:
    state = _imagenet_like()
    del state["layer1.0.conv1.weight"]
    state["extra.weight"] = torch.zeros(1)
    file = tmp_path / "bad.pt"
    torch.save(state, file)
    with pytest.raises(ConfigError, match=r"does not fit resnet18: missing keys \['layer1.0.conv1.weight'\]"
                                          r".*unexpected keys \['extra.weight'\]"):
        build_resnet18(weights=str(file))


def test_state_dict_with_wrong_shapes(tmp_path: Path) -> None:
    state = _imagenet_like()
    state["conv1.weight"] = torch.zeros(64, 1, 7, 7)  # a grayscale stem
    file = tmp_path / "gray.pt"
    torch.save(state, file)
    with pytest.raises(ConfigError, match=r"shapes do not fit resnet18: conv1.weight \(64, 1, 7, 7\) \(resnet18 has \(64, 3, 7, 7\)\)"):
        build_resnet18(weights=str(file))


def test_state_dict_path_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(ConfigError, match=r"expected imagenet, none, or the path of a state dict file; no such file"):
        build_resnet18(weights=str(missing))


@pytest.mark.parametrize("payload, message", [
    (b"plain text, not a torch file", r"not a torch state dict"),
    ([torch.zeros(1)], r"expected a dict of tensors, got list"),
    ({"conv1.weight": "text"}, r"expected a dict of tensors, got a str for 'conv1.weight'"),
])
def test_file_that_is_not_a_state_dict(tmp_path: Path, payload: object, message: str) -> None:
    file = tmp_path / "weights.pt"
    if isinstance(payload, bytes):
        file.write_bytes(payload)
    else:
        torch.save(payload, file)
    with pytest.raises(ConfigError, match=message):
        build_resnet18(weights=str(file))


def test_freeze_backbone_leaves_only_the_head_trainable() -> None:
    model = build_resnet18(weights="none", freeze_backbone=True)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}
    assert isinstance(model.fc, nn.Linear) and model.fc.out_features == 10


def test_without_freeze_everything_trains() -> None:
    model = build_resnet18(weights="none")
    assert all(p.requires_grad for p in model.parameters())
