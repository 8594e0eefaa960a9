"""Reading a traced graph to decide where a BatchNorm can fold exactly.

``backward_target`` finds the Conv/Linear whose output only this BN reads; ``forward_target`` walks
from the BN to the next Conv/Linear through ops that commute with a per-channel affine map. Each
returns either a ``Target`` or a reason (str) why that direction is not exact.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from dataclasses import dataclass

import torch
from torch import fx, nn

__all__ = ["Target", "backward_target", "forward_target", "describe", "call_counts"]

_PASSTHROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)  # no-ops in eval
_MAX_POOL = (nn.MaxPool1d, nn.MaxPool2d)
_MEAN_POOL = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AvgPool1d, nn.AvgPool2d)
_CONV = (nn.Conv1d, nn.Conv2d)
_BACKWARD_PAIRS: dict[type[nn.Module], tuple[type[nn.Module], ...]] = {
    nn.BatchNorm1d: (nn.Conv1d, nn.Linear),
    nn.BatchNorm2d: (nn.Conv2d,),
}
FoldTarget = nn.Conv1d | nn.Conv2d | nn.Linear


@dataclass(frozen=True)
class Target:
    """Where a BN folds: the layer and its path, and for a Linear after it the features per channel."""

    path: str
    layer: FoldTarget
    block: int = 1


def call_counts(graph: fx.Graph) -> Counter[str]:
    """How many times each module path is called in ``graph``."""
    return Counter(str(n.target) for n in graph.nodes if n.op == "call_module")


def describe(node: fx.Node, root: nn.Module) -> str:
    """Short human name of a traced op: ``features.2 (ReLU)``, ``relu``, ``view``."""
    if node.op == "call_module":
        return f"{node.target} ({type(root.get_submodule(str(node.target))).__name__})"
    if node.op in ("call_function", "call_method"):
        return getattr(node.target, "__name__", str(node.target))
    return node.name


def backward_target(bn_node: fx.Node, root: nn.Module, counts: Counter[str]) -> Target | str:
    """The Conv/Linear whose output feeds only ``bn_node``, or why there is none."""
    bn = root.get_submodule(str(bn_node.target))
    source = bn_node.args[0] if bn_node.args else None
    if not isinstance(source, fx.Node) or source.op != "call_module":
        name = describe(source, root) if isinstance(source, fx.Node) else repr(source)
        return f"its input is {name}, not a Conv/Linear output"
    layer = root.get_submodule(str(source.target))
    allowed = _BACKWARD_PAIRS.get(type(bn), ())
    if not isinstance(layer, allowed) or not isinstance(layer, (nn.Linear, *_CONV)):
        return f"its input is {describe(source, root)}, not a layer it can fold into"
    if len(_value_users(source)) != 1:
        return f"the output of {source.target} is also used by other ops"
    if counts[str(source.target)] != 1:
        return f"{source.target} is called {counts[str(source.target)]} times"
    if isinstance(layer, nn.Linear) and _rank(bn_node) not in (None, 2):
        return f"{source.target} output has rank {_rank(bn_node)}, so its features are not the BN channels"
    return Target(str(source.target), layer)


def forward_target(bn_node: fx.Node, root: nn.Module, counts: Counter[str], scale: torch.Tensor) -> Target | str:
    """The next Conv/Linear reached only through commuting ops, or why folding forward is not exact."""
    channels = scale.numel()
    flat_shape: tuple[int, ...] | None = None  # shape entering the flatten, once one was passed
    flat = False  # True once a flatten has turned each channel into a block of features
    node = bn_node
    while True:
        users = _value_users(node)
        if len(users) != 1:
            return f"the output of {describe(node, root)} is used by {len(users)} ops"
        node = users[0]
        if node.op == "output":
            return "no Conv/Linear follows it before the model output"
        module = root.get_submodule(str(node.target)) if node.op == "call_module" else None
        if isinstance(module, (nn.Linear, *_CONV)):
            return _check_target(node, module, flat_shape, flat, channels, counts)
        if _is_flatten(node, module):
            flat, flat_shape = True, _shape(node.args[0])
            continue
        problem = _commute_problem(node, module, flat, scale, root)
        if problem:
            return problem


def _commute_problem(
    node: fx.Node, module: nn.Module | None, flat: bool, scale: torch.Tensor, root: nn.Module
) -> str | None:
    """None when ``node`` commutes with the per-channel affine map, else why not."""
    if isinstance(module, _PASSTHROUGH):
        return None
    name = describe(node, root)
    if isinstance(module, _MAX_POOL) and not flat and not module.return_indices:
        # max(a*x + b) == a*max(x) + b only when a > 0.
        bad = [int(i) for i in torch.nonzero(scale <= 0).flatten()]
        return (
            None
            if not bad
            else f"{name} commutes with it only for a positive scale; channels {bad} have non-positive scale"
        )
    if isinstance(module, _MEAN_POOL) and not flat and _is_plain_mean(module):
        return None
    return f"{name} stands between it and the next Conv/Linear and does not commute with a per-channel affine map"


def _check_target(
    node: fx.Node,
    layer: FoldTarget,
    flat_shape: tuple[int, ...] | None,
    flat: bool,
    channels: int,
    counts: Counter[str],
) -> Target | str:
    path = str(node.target)
    if counts[path] != 1:
        return f"{path} is called {counts[path]} times"
    if isinstance(layer, nn.Linear):
        return _linear_target(path, layer, _shape(node.args[0]), flat, flat_shape, channels)
    if flat:
        return f"{path} follows a flatten, so its input channels are not the BN channels"
    if layer.in_channels != channels:
        return f"{path} has {layer.in_channels} input channels, the BN has {channels}"
    if _has_zero_padding(layer):
        return f"zero padding of {path} breaks the equivalence"
    return Target(path, layer)


def _linear_target(
    path: str,
    layer: nn.Linear,
    in_shape: tuple[int, ...] | None,
    flat: bool,
    flat_shape: tuple[int, ...] | None,
    channels: int,
) -> Target | str:
    """Fold into a Linear: directly after a (N, C) BN, or after a flatten of (N, C, *spatial)."""
    if not flat and (layer.in_features != channels or (in_shape is not None and len(in_shape) != 2)):
        return f"{path} acts on the last axis, which is not the BN channel axis"
    if layer.in_features % channels:
        return f"{path} has {layer.in_features} input features, not a multiple of the {channels} BN channels"
    block = layer.in_features // channels
    if flat_shape is not None and block != math.prod(flat_shape[2:]):
        return f"{path} input features do not line up with the flattened tensor of shape {flat_shape}"
    return Target(path, layer, block)


def _value_users(node: fx.Node) -> list[fx.Node]:
    """Users that read the values of ``node``; ``x.size(0)`` or ``x.shape`` only read its shape,
    which a per-channel affine map does not change."""
    return [
        user
        for user in node.users
        if not (user.target in ("size", "dim") or (user.target is getattr and user.args[1:] == ("shape",)))
    ]


def _is_flatten(node: fx.Node, module: nn.Module | None) -> bool:
    """True for flatten(x, 1) / nn.Flatten() / x.view(x.size(0), -1) / x.reshape(x.shape[0], -1)."""
    if isinstance(module, nn.Flatten):
        return bool(module.start_dim == 1 and module.end_dim == -1)
    if node.target in (torch.flatten, "flatten"):
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
        return bool(start == 1 and end == -1)
    if node.target in ("view", "reshape") and len(node.args) == 3 and node.args[2] == -1:
        return _is_batch_size_of(node.args[1], node.args[0])
    return False


def _is_batch_size_of(value: object, tensor: object) -> bool:
    """True when ``value`` is ``tensor.size(0)`` or ``tensor.shape[0]`` in the traced graph."""
    if not isinstance(value, fx.Node):
        return False
    if value.target == "size" and value.args[:1] == (tensor,):
        return bool(value.args[1:] == (0,) or value.kwargs.get("dim") == 0)
    if value.target is operator.getitem and value.args[1] == 0:
        shape = value.args[0]
        return isinstance(shape, fx.Node) and shape.target is getattr and shape.args == (tensor, "shape")
    return False


def _is_plain_mean(pool: nn.Module) -> bool:
    """True when the pool is a plain mean of real inputs (no zero padding counted, no divisor override)."""
    if isinstance(pool, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        return True
    if not isinstance(pool, (nn.AvgPool1d, nn.AvgPool2d)):
        return False
    padding = pool.padding if isinstance(pool.padding, tuple) else (pool.padding,)
    return getattr(pool, "divisor_override", None) is None and not pool.ceil_mode and not any(padding)


def _has_zero_padding(conv: nn.Conv1d | nn.Conv2d) -> bool:
    """True when the conv pads with zeros (reflect/replicate/circular padding commutes, zeros do not)."""
    if conv.padding_mode != "zeros" or conv.padding == "valid":
        return False
    if conv.padding == "same":
        return any(k > 1 for k in conv.kernel_size)
    return any(int(p) > 0 for p in conv.padding)


def _shape(node: object) -> tuple[int, ...] | None:
    """The shape recorded by shape propagation, when there was one."""
    if not isinstance(node, fx.Node):
        return None
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _rank(node: fx.Node) -> int | None:
    shape = _shape(node)
    return None if shape is None else len(shape)
