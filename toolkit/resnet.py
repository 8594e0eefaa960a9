"""torchvision ResNet18 with a 10-class head, starting from ImageNet weights, none, or a state dict."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from toolkit.errors import ConfigError


def imagenet_weights_path() -> Path:
    """Where torchvision's own mechanism caches the ImageNet ResNet18 weights (honours TORCH_HOME)."""
    from torchvision.models import ResNet18_Weights

    filename = os.path.basename(ResNet18_Weights.IMAGENET1K_V1.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _imagenet_state_dict() -> dict[str, torch.Tensor]:
    from torchvision.models import ResNet18_Weights

    cached = imagenet_weights_path()
    try:
        # torchvision's mechanism: reads the hub cache, downloads into it when missing.
        return ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=False)
    except Exception as exc:  # noqa: BLE001 - offline shows up as URLError, OSError, ...
        raise ConfigError(
            f"ImageNet weights for resnet18 are not in torchvision's cache ({cached}) and could not be "
            f"downloaded ({type(exc).__name__}): put the file there (TORCH_HOME moves the cache), or pass "
            "--weights PATH to a state dict, or --weights none"
        ) from None


def _state_dict_from(path: str) -> dict[str, torch.Tensor]:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--weights {path!r}: expected imagenet, none, or the path of a state dict file; "
                          "no such file")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"--weights {path}: not a torch state dict ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a toolkit checkpoint also works
    if not isinstance(state, dict):
        raise ConfigError(f"--weights {path}: expected a dict of tensors, got {type(state).__name__}")
    return state


def build_resnet18(weights: str = "none", freeze_backbone: bool = False, num_classes: int = 10) -> nn.Module:
    """ResNet18 whose last layer is replaced by a ``num_classes`` layer.

    ``weights``: ``imagenet`` (torchvision's standard weights, through its cache), ``none`` (random),
    or a path to a state dict, loaded strictly (a 1000-class or a ``num_classes`` head both fit).
    """
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=1000)
    if weights == "imagenet":
        model.load_state_dict(_imagenet_state_dict())
    elif weights != "none":
        state = _state_dict_from(weights)
        head = state.get("fc.weight")
        if head is not None and head.shape[0] == num_classes:
            model.fc = nn.Linear(model.fc.in_features, num_classes)
        _load_strict(model, state, weights)
    if model.fc.out_features != num_classes:
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    if freeze_backbone:
        for name, param in model.named_parameters():
            param.requires_grad = name.startswith("fc.")
    return model


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ConfigError(
            f"--weights {source}: state dict does not fit resnet18: missing keys "
            f"{result.missing_keys[:5]}{'...' if len(result.missing_keys) > 5 else ''}, unexpected keys "
            f"{result.unexpected_keys[:5]}{'...' if len(result.unexpected_keys) > 5 else ''}"
        )
