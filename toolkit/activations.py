"""Activation maps of one layer of an exported model for one photo (Figures 5 and 6).

Everything is read from the ONNX file, through the runtime: the photo is preprocessed with the
model's own metadata, the layer's tensor comes from ``Session.intermediates``, and for the model's
first convolution the filter weights come from the Conv node's initializer. Those weights are the
*exported* ones: a BatchNorm folded into the convolution has scaled each output channel (and added
a bias), so they are the trained filters times gamma / sqrt(var + eps), not the raw trained filters.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from toolkit.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_FILTER_COUNT = 10  # filters drawn when none are chosen: the first ten channels (two rows of five)


@dataclass(frozen=True)
class ActivationMaps:
    """One layer's output for one photo, and what was drawn from it.

    ``activations`` is the layer's whole output (C, H, W) for the photo; ``filters`` the channels
    drawn; ``weights`` the first convolution's (C, Cin, kH, kW) filters as stored in the ONNX file
    (BatchNorm folded in), or None for any other layer; ``bn_fold`` how a BatchNorm was folded into
    those weights ("backward": each output channel scaled, "forward": each input channel scaled) or
    None; ``path`` the PNG once drawn.
    """

    model: str
    layer: str
    tensor: str
    filters: tuple[int, ...]
    activations: np.ndarray
    weights: np.ndarray | None
    bn_fold: str | None
    path: Path | None = None

    @property
    def bn_folded(self) -> bool:
        """True when the drawn weights have a BatchNorm folded into them."""
        return self.bn_fold is not None

    @property
    def channels(self) -> int:
        """Number of channels (filters) of the layer."""
        return int(self.activations.shape[0])


def parse_filters(text: str) -> list[int]:
    """``"14,26,32"``, ``"0-9"`` or a mix (``"0-3,7"``) -> channel indices, in order, without repeats."""
    indices: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        first, sep, last = part.partition("-")
        try:
            low, high = (int(first), int(last)) if sep else (int(part), int(part))
        except ValueError:
            raise ConfigError(f"--filters {text!r}: expected channel indices like 14,26,32 or a range like "
                              f"0-9, got {part!r}") from None
        if low < 0 or high < low:
            raise ConfigError(f"--filters {text!r}: expected indices >= 0 and ranges low-high with low <= high, "
                              f"got {part!r}")
        indices.extend(range(low, high + 1))
    if not indices:
        raise ConfigError(f"--filters {text!r}: expected at least one channel index, e.g. 0-9")
    return list(dict.fromkeys(indices))


def compute_activations(model_path: str | os.PathLike, image_path: str | os.PathLike, layer: str,
                        filters: Sequence[int] | None = None) -> ActivationMaps:
    """The output of ``layer`` (a torch module path from ``toolkit.layers``) for the photo ``image_path``.

    ``filters`` defaults to the first ten channels. Raises the runtime's ``UnknownLayerError``
    (listing the valid names) for an unknown layer, and ``ConfigError`` for a layer whose output is
    not (N, C, H, W) or a filter index beyond the layer's channels.
    """
    from runtime import Session
    from toolkit.images import read_image

    session = Session(model_path)
    batch = session.preprocess([read_image(image_path)])  # (1, C, H, W), the model's resize + normalization
    output = session.intermediates(batch, [layer])[layer]
    if output.ndim != 4:
        raise ConfigError(f"layer {layer!r} outputs shape {tuple(output.shape)}, not (N, C, H, W) feature maps; "
                          "choose a convolution, activation or pooling layer")
    maps = output[0]  # (C, H, W)
    chosen = _check_filters(filters, maps.shape[0], layer)
    tensor = session.metadata.layers[layer]
    weights, conv_path = _first_conv_weights(session.path, tensor)
    folds = [e.get("direction") for e in session.metadata.export.get("folded", [])
             if e.get("into") in {conv_path, layer}]
    return ActivationMaps(session.metadata.model, layer, tensor, chosen, maps, weights,
                          bn_fold=folds[0] if weights is not None and folds else None)


def draw_activations(model_path: str | os.PathLike, image_path: str | os.PathLike, layer: str,
                     filters: Sequence[int] | None, output: str | os.PathLike) -> ActivationMaps:
    """Compute the activations of ``layer`` for the photo and draw them to the PNG ``output`` (atomically).

    For the model's first convolution the filter weights are drawn above the activations (Figure 5);
    these are the exported weights, with any BatchNorm folded in (one after the conv scales each output
    channel; the title says which). Any
    other layer is drawn as a grid of activations (Figure 6). Returns the data, with ``path`` set.
    """
    from toolkit.plots import plot_activations

    maps = compute_activations(model_path, image_path, layer, filters)
    path = plot_activations(maps.activations, list(maps.filters), output, weights=maps.weights,
                            title=_title(maps, Path(image_path).name))
    return replace(maps, path=path)


def _check_filters(filters: Sequence[int] | None, channels: int, layer: str) -> tuple[int, ...]:
    if filters is None:
        return tuple(range(min(channels, DEFAULT_FILTER_COUNT)))
    chosen = tuple(dict.fromkeys(int(f) for f in filters))
    if not chosen:
        raise ConfigError(f"expected at least one filter index for layer {layer!r} (0..{channels - 1})")
    bad = [f for f in chosen if not 0 <= f < channels]
    if bad:
        raise ConfigError(f"filters {bad} are out of range: layer {layer!r} has {channels} channels, "
                          f"so indices must be 0..{channels - 1}")
    return chosen


def _first_conv_weights(model_path: Path, tensor: str) -> tuple[np.ndarray | None, str | None]:
    """(weights, module path) when ``tensor`` is made by a Conv that reads the graph input, else (None, None).

    "First convolution" is decided on the graph, not by name: only a Conv fed directly by the image
    has filters that can be shown as pictures (their input channels are the image's channels).
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_path)).graph
    inputs = {i.name for i in graph.input} - {t.name for t in graph.initializer}
    node = next((n for n in graph.node if tensor in n.output), None)
    if node is None or node.op_type != "Conv" or node.input[0] not in inputs:
        return None, None
    weight = node.input[1]
    for init in graph.initializer:
        if init.name == weight:
            return numpy_helper.to_array(init).astype(np.float32), weight.removesuffix(".weight")
    for const in graph.node:  # an exporter may also store weights as a Constant node
        if const.op_type == "Constant" and weight in const.output and const.attribute:
            return numpy_helper.to_array(const.attribute[0].t).astype(np.float32), weight.removesuffix(".weight")
    log.warning("first convolution %s: weight %r is computed in the graph, not stored; drawing activations only",
                node.name, weight)
    return None, None


def _title(maps: ActivationMaps, image_name: str) -> str:
    if maps.weights is None:
        return f"{maps.model} {maps.layer}: activations for {image_name}"
    kind = {"backward": "BatchNorm folded in: each output channel scaled",
            "forward": "BatchNorm folded in: each input channel scaled"}.get(maps.bn_fold or "", "as exported")
    return f"{maps.model} {maps.layer}: filter weights ({kind}) and activations for {image_name}"
