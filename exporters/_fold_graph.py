"""Facts the BatchNorm fold reads from a traced graph: users, flattens, shapes and tensor ranks.

Shapes come from shape propagation (``fold_batchnorm(..., input_size=...)``). Without them a rank is
still known when the tensor descends from a flatten through ops that keep the rank (a Linear, a
ReLU, a BN); otherwise it is unknown (None) and the fold refuses whatever depends on it.
"""

from __future__ import annotations

import operator
from collections import Counter

import torch
import torch.nn.functional as F
from torch import fx, nn

__all__ = ["UNKNOWN_SHAPE", "call_counts", "describe", "value_users", "is_flatten", "shape_of", "rank_of"]

UNKNOWN_SHAPE = "shape unknown: pass input_size"

# Modules and functions whose output has the rank of their first input (batched or not).
_RANK_KEEPING_MODULES = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.modules.batchnorm._BatchNorm,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.AlphaDropout,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.Sigmoid,
    nn.Tanh,
)
_RANK_KEEPING_CALLS = {torch.relu, F.relu, torch.sigmoid, torch.tanh, F.gelu, F.silu, "relu", "sigmoid", "tanh"}


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


def module_of(node: fx.Node, root: nn.Module) -> nn.Module | None:
    """The module a ``call_module`` node calls, else None."""
    return root.get_submodule(str(node.target)) if node.op == "call_module" else None


def value_users(node: fx.Node) -> list[fx.Node]:
    """Users that read the values of ``node``; ``x.size(0)`` or ``x.shape`` only read its shape,
    which a per-channel affine map does not change."""
    return [
        user
        for user in node.users
        if not (user.target in ("size", "dim") or (user.target is getattr and user.args[1:] == ("shape",)))
    ]


def is_flatten(node: fx.Node, module: nn.Module | None) -> bool:
    """True for flatten(x, 1) / nn.Flatten() / x.view(x.size(0), -1) / x.reshape(x.shape[0], -1)."""
    if isinstance(module, nn.Flatten):
        return bool(module.start_dim == 1 and module.end_dim == -1)
    if node.op in ("call_function", "call_method") and node.target in (torch.flatten, "flatten"):
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
        return bool(start == 1 and end == -1)
    if node.op == "call_method" and node.target in ("view", "reshape") and len(node.args) == 3:
        return node.args[2] == -1 and _is_batch_size_of(node.args[1], node.args[0])
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


def shape_of(node: object) -> tuple[int, ...] | None:
    """The shape recorded by shape propagation, when there was one."""
    if not isinstance(node, fx.Node):
        return None
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def rank_of(node: object, root: nn.Module) -> int | None:
    """The rank of the tensor ``node`` produces: recorded, or that of the flatten it descends from
    through rank-keeping ops; None when neither tells."""
    while isinstance(node, fx.Node):
        shape = shape_of(node)
        if shape is not None:
            return len(shape)
        module = module_of(node, root)
        if is_flatten(node, module):
            return 2  # (N, features) whatever went in
        keeps = isinstance(module, _RANK_KEEPING_MODULES) or (
            node.op in ("call_function", "call_method") and node.target in _RANK_KEEPING_CALLS
        )
        if not keeps or not node.args:
            return None
        node = node.args[0]
    return None
