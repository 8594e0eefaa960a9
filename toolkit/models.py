"""Model registry: a dict and a decorator, plus the study's CIFAR-10 networks.

Per-model constants (input size, normalization, classes) sit on the registry entry; the builders
only build. Every network ends in raw logits: the seed's tables list "ReLU" on the last Dense
layer, but the cross-entropy loss expects logits, so we emit them unactivated.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from toolkit.data import CIFAR10_MEAN, CIFAR10_STD
from toolkit.errors import ConfigError

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: how to build a model and the facts that travel with it."""

    name: str
    builder: Callable[..., nn.Module]
    input_size: tuple[int, int, int] = (3, 32, 32)
    mean: tuple[float, float, float] = CIFAR10_MEAN
    std: tuple[float, float, float] = CIFAR10_STD
    classes: tuple[str, ...] = CIFAR10_CLASSES
    description: str = ""
    atol: float = 1e-4                   # export validation: max |torch - onnx| logit difference ...
    rtol: float = 0.0                    # ... or this fraction of the largest |logit| (deep nets)
    defaults: dict[str, Any] = field(default_factory=dict)  # default builder arguments
    size_arg: str | None = "image_size"  # builder argument that adapts the model to another input size

    def build(self, **kwargs: Any) -> nn.Module:
        """Build the model with the entry's defaults overridden by ``kwargs``."""
        return self.builder(**{**self.defaults, **kwargs})


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, **spec_fields: Any) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model builder under ``name``."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelSpec(name=name, builder=builder, **spec_fields)
        return builder

    return decorate


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def get_model_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; an unknown name lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}: expected one of {', '.join(list_models())}"
        ) from None


def get_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` (keyword arguments go to its builder)."""
    return get_model_spec(name).build(**kwargs)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}


def make_activation(name: str) -> nn.Module:
    """An activation module by name (relu, elu, leaky_relu, sigmoid, tanh)."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}: expected one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def _conv_unit(cin: int, cout: int, kernel: int, activation: str, batchnorm: bool,
               bn_before_relu: bool) -> list[nn.Module]:
    """Conv(k, same padding) + activation (+ BatchNorm after it, or before it when asked)."""
    conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2)
    if not batchnorm:
        return [conv, make_activation(activation)]
    if bn_before_relu:
        return [conv, nn.BatchNorm2d(cout), make_activation(activation)]
    return [conv, make_activation(activation), nn.BatchNorm2d(cout)]


class CifarCNN(nn.Module):
    """The study's CNN family: conv blocks with 2x2 max pooling, then Dense(hidden) and Dense(10).

    ``convs_per_block=1, batchnorm=False`` is the Task 2 network; ``batchnorm=True`` is Network 1;
    ``convs_per_block=2, batchnorm=True`` is Network 2.
    """

    def __init__(self, *, channels: tuple[int, ...] = (32, 64, 128), convs_per_block: int = 1,
                 kernel_size: int = 5, hidden: int = 64, num_classes: int = 10,
                 batchnorm: bool = False, bn_before_relu: bool = False, activation: str = "relu",
                 dropout: float = 0.0, in_channels: int = 3, image_size: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for cout in channels:
            for _ in range(convs_per_block):
                layers += _conv_unit(cin, cout, kernel_size, activation, batchnorm, bn_before_relu)
                cin = cout
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(channels)
        head: list[nn.Module] = [nn.Flatten(), nn.Linear(cin * side * side, hidden)]
        if batchnorm and bn_before_relu:
            head += [nn.BatchNorm1d(hidden), make_activation(activation)]
        elif batchnorm:
            head += [make_activation(activation), nn.BatchNorm1d(hidden)]
        else:
            head.append(make_activation(activation))
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(hidden, num_classes))  # logits: no activation
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 3, 32, 32) -> features (B, 128, 4, 4) -> logits (B, 10)
        return self.classifier(self.features(x))


@register_model("task2", description="Task 2 CNN: 3 conv blocks 32/64/128 (5x5) + MaxPool, Dense 64, Dense 10")
def task2(**kwargs: Any) -> nn.Module:
    """The seed's Task 2 network (390,410 parameters)."""
    return CifarCNN(**{"convs_per_block": 1, "batchnorm": False, **kwargs})


@register_model("net1", description="Network 1: Task 2 CNN with BatchNorm after each ReLU")
def net1(**kwargs: Any) -> nn.Module:
    """Network 1: Conv+ReLU+BatchNorm2d+MaxPool blocks, Dense 64+ReLU+BatchNorm1d, Dense 10."""
    return CifarCNN(**{"convs_per_block": 1, "batchnorm": True, **kwargs})


@register_model("net2", description="Network 2: two Conv+ReLU+BatchNorm2d per block")
def net2(**kwargs: Any) -> nn.Module:
    """Network 2: each block has two Conv+ReLU+BatchNorm2d layers before the pool."""
    return CifarCNN(**{"convs_per_block": 2, "batchnorm": True, **kwargs})


@register_model("resnet18", input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD, rtol=1e-4, size_arg=None,
                description="torchvision ResNet18, last layer replaced by a 10-class layer")
def resnet18(**kwargs: Any) -> nn.Module:
    """ResNet18 for CIFAR-10 (see :func:`toolkit.resnet.build_resnet18` for ``weights``)."""
    from toolkit.resnet import build_resnet18

    return build_resnet18(**kwargs)
