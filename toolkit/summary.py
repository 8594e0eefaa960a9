"""Layer-by-layer summary (output shape, parameters) and the output-size arithmetic behind it."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from toolkit.errors import ConfigError, ToolkitError, first_line


def conv_output_size(size: int, kernel: int, padding: int = 0, stride: int = 1) -> int:
    """W2 = (W1 - F + 2P) / S + 1, refusing sizes that do not divide evenly."""
    span = size - kernel + 2 * padding
    if span < 0 or span % stride:
        raise ConfigError(f"a {kernel}x{kernel} window with padding {padding} and stride {stride} does not "
                          f"tile an input of size {size}: (W - F + 2P) = {span} must be >= 0 and divisible by S")
    return span // stride + 1


@dataclass(frozen=True)
class LayerRow:
    """One leaf layer of a summary."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int


def summarize(model: nn.Module, input_size: tuple[int, int, int]) -> list[LayerRow]:
    """Run one zero image through ``model`` and record each leaf module's output shape and parameters."""
    rows: list[LayerRow] = []
    hooks = []
    for name, module in model.named_modules():
        if next(module.children(), None) is not None:
            continue  # containers: their leaves are listed
        def hook(mod: nn.Module, _inp: object, out: torch.Tensor, name: str = name) -> None:
            params = sum(p.numel() for p in mod.parameters(recurse=False))
            rows.append(LayerRow(name, type(mod).__name__, tuple(out.shape[1:]), params))
        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model(torch.zeros(1, *input_size))
    except RuntimeError as exc:  # a size the layers cannot take (too small, or a Linear fixed to another size)
        where = f" (at layer {rows[-1].name}, the last that ran)" if rows else ""
        raise ToolkitError(f"input size {tuple(input_size)} does not fit this model{where}: {first_line(exc)}; "
                           "pass a larger --input-size, or the model's own") from None
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows
