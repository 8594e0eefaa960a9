"""torchvision ResNet18 with a 10-class head, starting from ImageNet weights, none, or a state dict."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from toolkit.errors import ConfigError

log = logging.getLogger(__name__)


def imagenet_weights_path() -> Path:
    """Where torchvision's own mechanism caches the ImageNet ResNet18 weights (honours TORCH_HOME)."""
    from torchvision.models import ResNet18_Weights

    filename = os.path.basename(ResNet18_Weights.IMAGENET1K_V1.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _imagenet_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights: read from its hub cache, downloaded into it when missing."""
    from torchvision.models import ResNet18_Weights

    weights = ResNet18_Weights.IMAGENET1K_V1
    cached = imagenet_weights_path()
    present = cached.is_file()  # looked at first, so a bad cached file is not reported as "not in the cache"
    if not present:
        log.info("ImageNet weights not in %s; downloading %s", cached, weights.url)
    try:
        # The call torchvision's resnet18(weights=...) makes; check_hash verifies a download, and
        # weights_only=True never runs code from whatever file lies in the cache.
        state = weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - offline shows up as URLError, OSError, a hash RuntimeError, ...
        if present:
            raise ConfigError(f"cached ImageNet weights {cached} cannot be read ({_describe(exc)}): delete the "
                              "file so it is downloaded again, or pass --weights PATH to a state dict") from None
        raise ConfigError(
            f"ImageNet weights for resnet18 are not in torchvision's cache ({cached}) and could not be "
            f"downloaded ({type(exc).__name__}): put the file there (TORCH_HOME moves the cache), or pass "
            "--weights PATH to a state dict, or --weights none"
        ) from None
    return _check_state(state, f"cached ImageNet weights {cached}", "delete the file so it is downloaded again")


def _check_state(state: object, what: str, fix: str) -> dict[str, torch.Tensor]:
    """``state`` as a dict of tensors (a toolkit checkpoint gives its ``state_dict``), else ConfigError."""
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a toolkit checkpoint also works
    if not isinstance(state, dict):
        raise ConfigError(f"{what}: expected a dict of tensors, got {type(state).__name__}; {fix}")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ConfigError(f"{what}: expected a dict of tensors, got a {type(value).__name__} for {key!r}; {fix}")
    return state


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _state_dict_from(path: str) -> dict[str, torch.Tensor]:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--weights {path!r}: expected imagenet, none, or the path of a state dict file; "
                          "no such file")
    fix = "pass a file saved with torch.save(model.state_dict(), PATH)"
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise ConfigError(f"--weights {path}: not a torch state dict ({_describe(exc)}); {fix}") from None
    return _check_state(state, f"--weights {path}", fix)


def build_resnet18(weights: str = "none", freeze_backbone: bool = False, num_classes: int = 10) -> nn.Module:
    """ResNet18 whose last layer is replaced by a ``num_classes`` layer.

    ``weights``: ``imagenet`` (torchvision's standard weights, through its cache), ``none`` (random),
    or a path to a state dict, loaded strictly (a 1000-class or a ``num_classes`` head both fit).
    ``freeze_backbone`` leaves only the new head (``fc.*``) trainable. Raises ``ConfigError`` for
    weights that cannot be found, read or fitted.
    """
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=1000)
    if weights != "none":
        imagenet = weights == "imagenet"
        state = _imagenet_state_dict() if imagenet else _state_dict_from(weights)
        head = state.get("fc.weight")
        if head is not None and head.shape[0] == num_classes:
            model.fc = nn.Linear(model.fc.in_features, num_classes)
        _load_strict(model, state, "imagenet" if imagenet else weights)
    if model.fc.out_features != num_classes:
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    if freeze_backbone:
        for name, param in model.named_parameters():
            param.requires_grad = name.startswith("fc.")
    return model


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load every key or none: report missing / unexpected keys and wrong shapes as one ConfigError."""
    own = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} (resnet18 has {tuple(own[k].shape)})"
             for k, v in state.items() if k in own and v.shape != own[k].shape]
    if wrong:  # checked first: load_state_dict would raise a multi-line RuntimeError for these
        raise ConfigError(f"--weights {source}: shapes do not fit resnet18: {'; '.join(wrong[:5])}"
                          f"{'...' if len(wrong) > 5 else ''}; expected a torchvision resnet18 state dict")
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ConfigError(
            f"--weights {source}: state dict does not fit resnet18: missing keys {_first(result.missing_keys)}, "
            f"unexpected keys {_first(result.unexpected_keys)}; expected a torchvision resnet18 state dict"
        )


def _first(items: list[str], count: int = 5) -> str:
    return f"{items[:count]}{'...' if len(items) > count else ''}"
