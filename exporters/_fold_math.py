"""Exact parameter updates that fold a BatchNorm's per-channel affine map into a Conv or Linear.

In eval mode a BatchNorm is ``y = scale * x + shift`` per channel, with
``scale = gamma / sqrt(running_var + eps)`` and ``shift = beta - running_mean * scale``.
Everything is computed in float64 and cast back once, so the folded weights are as close to the
exact values as the parameter dtype allows.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["bn_affine", "fold_into_previous", "fold_into_next"]

FoldTarget = nn.Conv1d | nn.Conv2d | nn.Linear


def bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), float64 (C,) each, such that ``bn(x) == scale * x + shift`` per channel in eval mode."""
    assert bn.running_mean is not None and bn.running_var is not None  # checked by the caller
    mean = bn.running_mean.detach().double()
    var = bn.running_var.detach().double()
    # affine=False means gamma = 1 and beta = 0.
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)  # the BN's own eps, never a default
    return scale, beta - mean * scale


def fold_into_previous(layer: FoldTarget, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """Make ``layer`` compute ``scale * layer(x) + shift`` (the BN that follows it), in place.

    W' = W * scale (per output channel), b' = scale * b + shift == scale * (b - mean) + beta.
    A layer without bias gains one.
    """
    weight = layer.weight.detach().double()  # (out, in, *kernel) or (out, in)
    bias = _bias64(layer)
    per_out = scale.view((-1,) + (1,) * (weight.dim() - 1))
    _assign(layer, weight * per_out, scale * bias + shift)


def fold_into_next(layer: FoldTarget, scale: torch.Tensor, shift: torch.Tensor, block: int) -> None:
    """Make ``layer`` compute ``layer(scale * x + shift)`` (the BN before it), in place.

    For a Linear, channel c of the BN covers ``block`` consecutive input features (H*W after a
    flatten of NCHW, 1 for a (N, C) input). For a Conv (without zero padding, checked by the caller)
    channel c is input channel c; the shift is summed over the kernel. b' = b + W @ shift.
    """
    weight = layer.weight.detach().double()
    if isinstance(layer, nn.Linear):
        in_scale = scale.repeat_interleave(block)  # (in_features,)
        in_shift = shift.repeat_interleave(block)
        new_weight = weight * in_scale.unsqueeze(0)
        new_bias = _bias64(layer) + weight @ in_shift
    else:
        in_scale = _per_output_input(layer, scale)  # (out, in/groups, 1, ...)
        in_shift = _per_output_input(layer, shift)
        new_weight = weight * in_scale
        new_bias = _bias64(layer) + (weight * in_shift).flatten(1).sum(dim=1)
    _assign(layer, new_weight, new_bias)


def _per_output_input(conv: nn.Conv1d | nn.Conv2d, values: torch.Tensor) -> torch.Tensor:
    """Per input-channel ``values`` laid out like the conv weight: output o sees its group's channels."""
    out_channels, per_group = conv.weight.shape[:2]
    grouped = values.view(conv.groups, per_group)  # (groups, in/groups)
    expanded = grouped.repeat_interleave(out_channels // conv.groups, dim=0)  # (out, in/groups)
    return expanded.view(expanded.shape + (1,) * (conv.weight.dim() - 2))


def _bias64(layer: FoldTarget) -> torch.Tensor:
    if layer.bias is None:
        return torch.zeros(layer.weight.shape[0], dtype=torch.float64, device=layer.weight.device)
    return layer.bias.detach().double()


def _assign(layer: FoldTarget, weight: torch.Tensor, bias: torch.Tensor) -> None:
    dtype = layer.weight.dtype
    with torch.no_grad():
        layer.weight = nn.Parameter(weight.to(dtype))
        layer.bias = nn.Parameter(bias.to(dtype))
