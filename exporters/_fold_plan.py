"""Reading a traced graph to decide where a BatchNorm can fold exactly.

``backward_target`` finds the Conv/Linear whose output only this BN reads; ``forward_target`` walks
from the BN to the next Conv/Linear through ops that commute with a per-channel affine map. Each
returns either a ``Target`` or a reason (str) why that direction is not exact.

A BN scales axis 1 (its channels); a Linear acts on the last axis, a Conv/pool on the axes after a
batch and a channel axis. So every fold checks the tensor rank, and when the rank is unknown (no
``input_size`` and no flatten to infer it from) the fold does not happen.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import torch
from torch import fx, nn

from exporters._fold_graph import UNKNOWN_SHAPE, describe, is_flatten, module_of, rank_of, shape_of, value_users

__all__ = ["Target", "backward_target", "forward_target"]

_PASSTHROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)  # no-ops in eval
_MAX_POOL = (nn.MaxPool1d, nn.MaxPool2d)
_MEAN_POOL = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AvgPool1d, nn.AvgPool2d)
_CONV = (nn.Conv1d, nn.Conv2d)
_BACKWARD_PAIRS: dict[type[nn.Module], tuple[type[nn.Module], ...]] = {
    nn.BatchNorm1d: (nn.Conv1d, nn.Linear),
    nn.BatchNorm2d: (nn.Conv2d,),
}
# Spatial axes of a module that works on (N, C, *spatial): it needs a tensor of rank 2 + this.
_SPATIAL_AXES: dict[type[nn.Module], int] = {
    nn.Conv1d: 1, nn.MaxPool1d: 1, nn.AvgPool1d: 1, nn.AdaptiveAvgPool1d: 1,
    nn.Conv2d: 2, nn.MaxPool2d: 2, nn.AvgPool2d: 2, nn.AdaptiveAvgPool2d: 2,
}  # fmt: skip
FoldTarget = nn.Conv1d | nn.Conv2d | nn.Linear


@dataclass(frozen=True)
class Target:
    """Where a BN folds: the layer and its path, and for a Linear after it the features per channel."""

    path: str
    layer: FoldTarget
    block: int = 1


@dataclass(frozen=True)
class _Walk:
    """What lies between the BN and the op reached: the tensor rank, and the flatten passed if any."""

    rank: int | None
    flat: bool = False
    flat_shape: tuple[int, ...] | None = None  # shape entering the flatten, when recorded


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
    if len(value_users(source)) != 1:
        return f"the output of {source.target} is also used by other ops"
    if counts[str(source.target)] != 1:
        return f"{source.target} is called {counts[str(source.target)]} times"
    # Linear output features are its last axis, a Conv's channels axis 1 only when batched.
    wanted = 2 if isinstance(layer, nn.Linear) else 2 + _SPATIAL_AXES[type(layer)]
    rank = _bn_rank(bn_node, root)
    if rank is None:
        return f"{UNKNOWN_SHAPE} (the rank of the {source.target} output decides whether it has the BN channels)"
    if rank != wanted:
        return f"{source.target} output has rank {rank}, so its features are not the BN channels"
    return Target(str(source.target), layer)


def forward_target(bn_node: fx.Node, root: nn.Module, counts: Counter[str], scale: torch.Tensor) -> Target | str:
    """The next Conv/Linear reached only through commuting ops, or why folding forward is not exact."""
    walk = _Walk(_bn_rank(bn_node, root))
    node = bn_node
    while True:
        users = value_users(node)
        if len(users) != 1:
            return f"the output of {describe(node, root)} is used by {len(users)} ops"
        node = users[0]
        if node.op == "output":
            return "no Conv/Linear follows it before the model output"
        module = module_of(node, root)
        if isinstance(module, (nn.Linear, *_CONV)):
            return _check_target(node, module, walk, scale.numel(), counts)
        if is_flatten(node, module):
            walk = walk if walk.flat else _Walk(2, True, shape_of(node.args[0]))
            continue
        problem = _commute_problem(node, module, walk, scale, root)
        if problem:
            return problem


def _bn_rank(bn_node: fx.Node, root: nn.Module) -> int | None:
    """Rank of the tensor a BN reads (and writes): 4 for a BatchNorm2d, which accepts nothing else."""
    return 4 if isinstance(root.get_submodule(str(bn_node.target)), nn.BatchNorm2d) else rank_of(bn_node, root)


def _commute_problem(
    node: fx.Node, module: nn.Module | None, walk: _Walk, scale: torch.Tensor, root: nn.Module
) -> str | None:
    """None when ``node`` commutes with the per-channel affine map, else why not."""
    if isinstance(module, _PASSTHROUGH):
        return None
    name = describe(node, root)
    pool = isinstance(module, _MAX_POOL) and not module.return_indices
    pool = pool or (isinstance(module, _MEAN_POOL) and _is_plain_mean(module))
    if not pool or walk.flat:
        return f"{name} stands between it and the next Conv/Linear and does not commute with a per-channel affine map"
    assert module is not None
    problem = _rank_problem(name, walk.rank, 2 + _SPATIAL_AXES[type(module)])
    if problem or not isinstance(module, _MAX_POOL):
        return problem
    # max(a*x + b) == a*max(x) + b only when a > 0 (padding is -inf, so it never wins).
    bad = [int(i) for i in torch.nonzero(scale <= 0).flatten()]
    return f"{name} commutes with it only for a positive scale; channels {bad} have non-positive scale" if bad else None


def _rank_problem(name: str, rank: int | None, wanted: int) -> str | None:
    """None when a module that works on (N, C, *spatial) sees a tensor of rank ``wanted``."""
    if rank is None:
        return f"{UNKNOWN_SHAPE} (the rank of the input of {name} decides whether it keeps the BN channels apart)"
    if rank != wanted:
        return f"{name} needs a rank-{wanted} (N, C, ...) input to keep the BN channels apart, got rank {rank}"
    return None


def _check_target(node: fx.Node, layer: FoldTarget, walk: _Walk, channels: int, counts: Counter[str]) -> Target | str:
    path = str(node.target)
    if counts[path] != 1:
        return f"{path} is called {counts[path]} times"
    if isinstance(layer, nn.Linear):
        return _linear_target(path, layer, walk, channels)
    if walk.flat:
        return f"{path} follows a flatten, so its input channels are not the BN channels"
    problem = _rank_problem(path, walk.rank, 2 + _SPATIAL_AXES[type(layer)])
    if problem:
        return problem
    if layer.in_channels != channels:
        return f"{path} has {layer.in_channels} input channels, the BN has {channels}"
    if _has_zero_padding(layer):
        return f"zero padding of {path} breaks the equivalence"
    return Target(path, layer)


def _linear_target(path: str, layer: nn.Linear, walk: _Walk, channels: int) -> Target | str:
    """Fold into a Linear: directly after a (N, C) BN, or after a flatten of (N, C, *spatial)."""
    if not walk.flat:
        # Without a flatten the Linear acts on the last axis: the BN channel axis only for (N, C).
        if walk.rank is None:
            return f"{UNKNOWN_SHAPE} (the rank of the input of {path} decides whether it acts on the BN channel axis)"
        if walk.rank != 2:
            return f"{path} acts on the last axis of a rank-{walk.rank} tensor, which is not the BN channel axis"
        if layer.in_features != channels:
            return f"{path} has {layer.in_features} input features, the BN has {channels} channels"
        return Target(path, layer)
    if layer.in_features % channels:
        return f"{path} has {layer.in_features} input features, not a multiple of the {channels} BN channels"
    # flatten(1) of (N, C, *spatial) puts channel c in features [c*S, (c+1)*S) with S = prod(spatial),
    # and the Linear runs only when in_features == C*S, so the block is S even without shapes.
    block = layer.in_features // channels
    if walk.flat_shape is not None and block != math.prod(walk.flat_shape[2:]):
        return f"{path} input features do not line up with the flattened tensor of shape {walk.flat_shape}"
    return Target(path, layer, block)


def _is_plain_mean(pool: nn.Module) -> bool:
    """True when the pool is a plain mean of real inputs (no zero padding counted, no divisor override)."""
    if isinstance(pool, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        return True
    if not isinstance(pool, (nn.AvgPool1d, nn.AvgPool2d)):
        return False
    padding = pool.padding if isinstance(pool.padding, tuple) else (pool.padding,)
    zeros_counted = any(padding) and pool.count_include_pad
    return getattr(pool, "divisor_override", None) is None and not pool.ceil_mode and not zeros_counted


def _has_zero_padding(conv: nn.Conv1d | nn.Conv2d) -> bool:
    """True when the conv pads with zeros (reflect/replicate/circular padding commutes, zeros do not)."""
    if conv.padding_mode != "zeros" or conv.padding == "valid":
        return False
    if conv.padding == "same":
        return any(k > 1 for k in conv.kernel_size)
    return any(int(p) > 0 for p in conv.padding)
