"""``export_onnx``: an eval-mode, BN-folded torch model -> one self-contained ONNX file.

The file follows the contract in docs/ARCHITECTURE.md: input ``input`` [batch, C, H, W], output
``logits`` [batch, K], ``toolkit.*`` metadata (including ``toolkit.layers``), no external data.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch
from onnx import version_converter
from torch import nn

from exporters import _onnx_graph as graph_ops
from exporters._layer_check import check_layers
from exporters._layers import map_layers
from exporters._metadata import build_metadata, check_metadata
from exporters.errors import ExportError
from exporters.fold import FoldEntry, FoldReport, fold_batchnorm, require_running_stats
from runtime._fileio import write_atomic

__all__ = ["ExportResult", "export_onnx", "INPUT_NAME", "OUTPUT_NAME"]

logger = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
_NATIVE_OPSET = 18  # the dynamo exporter's lowest native opset; lower ones are converted by onnx
_MIN_OPSET = 13


@dataclass(frozen=True)
class ExportResult:
    """What ``export_onnx`` wrote: the file, its opset, the fold report, layer map and BN count."""

    path: Path
    opset: int
    fold_report: FoldReport
    layers: dict[str, str] = field(default_factory=dict)
    batchnorm_nodes: int = 0
    layers_unavailable: dict[str, str] = field(default_factory=dict)  # module path -> why no tensor holds it

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready summary: every BatchNorm folded (into what) or kept (why), in forward order."""
        return {
            "path": str(self.path),
            "opset": self.opset,
            "batchnorm_folded": len(self.fold_report.folded),
            "batchnorm_kept": len(self.fold_report.kept),
            "batchnorm_nodes": self.batchnorm_nodes,
            "fold": {"entries": [e.to_dict() for e in self.fold_report.entries]},
            "layers": dict(self.layers),
            "layers_unavailable": dict(self.layers_unavailable),
        }


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    input_size: tuple[int, int, int],
    metadata: dict[str, object],
    opset: int = 18,
    fold: bool = True,
) -> ExportResult:
    """Export ``model`` (an eval-mode copy; the caller's model is untouched) to the ONNX file ``path``.

    ``input_size`` is (C, H, W); ``metadata`` needs ``model``, ``mean``, ``std``, ``classes`` and
    ``version`` (written as ``toolkit.<key>``; other keys are written too). With ``fold`` every
    BatchNorm that folds exactly is folded first; ``fold=False`` exports every BatchNorm as a
    BatchNormalization node (and skips the exporter's graph optimizer, which would fuse some).
    Raises ``FoldError`` for a BN without running statistics and ``ExportError`` for anything else
    that stops a correct export.
    """
    size = _check_args(model, input_size, opset)
    target = Path(path)
    if not target.parent.is_dir():
        raise ExportError(f"expected an existing directory for {target}, got none at {target.parent}; create it first")
    folded, report = _prepare(model, size, fold)
    batch, logits = _example_batch(folded, size)
    check_metadata(metadata, size, _check_logits(logits, batch.shape[0]))
    proto = _to_onnx(folded, batch, opset, optimize=fold)
    layers = map_layers(proto, folded, INPUT_NAME)
    graph_ops.strip_debug_metadata(proto)
    proto, layers = _convert_opset(proto, opset, layers)
    _finish_graph(proto)
    layers, unavailable = check_layers(proto, model, layers, report.entries, tuple(batch.shape), INPUT_NAME)
    if unavailable:
        logger.info("left out of toolkit.layers (no tensor holds their torch output): %s", sorted(unavailable))
    proto.graph.name = str(metadata["model"])  # what tools like Netron show as the model's name
    batchnorms = graph_ops.count_ops(proto, "BatchNormalization")
    info = {"opset": opset, "batchnorm_nodes": batchnorms, "exporter": f"torch {torch.__version__} dynamo",
            "layers_unavailable": unavailable}
    graph_ops.set_metadata(proto, build_metadata(metadata, size, layers, {**info, **report.to_dict()}))
    _write_atomically(proto, target, opset)
    logger.info("exported %s (opset %d, %d BatchNorm nodes left)", target, opset, batchnorms)
    return ExportResult(target, opset, report, layers, batchnorms, unavailable)


def _check_args(model: object, input_size: object, opset: object) -> tuple[int, int, int]:
    if not isinstance(model, nn.Module):
        raise ExportError(f"expected a torch.nn.Module to export, got {type(model).__name__}")
    if not (
        isinstance(input_size, (tuple, list))
        and len(input_size) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in input_size)
    ):
        raise ExportError(f"expected input_size (C, H, W) of three positive ints, got {input_size!r}")
    top = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not _MIN_OPSET <= opset <= top:
        raise ExportError(f"expected opset an int in {_MIN_OPSET}..{top} (this onnx), got {opset!r}; 18 is the default")
    return (input_size[0], input_size[1], input_size[2])


def _prepare(model: nn.Module, size: tuple[int, int, int], fold: bool) -> tuple[nn.Module, FoldReport]:
    """The eval-mode CPU copy to export and its fold report (every BN kept when ``fold`` is False)."""
    copied = copy.deepcopy(model).cpu().eval()  # the caller's model keeps its device and mode
    if fold:
        return fold_batchnorm(copied, input_size=size)
    require_running_stats(copied, ExportError)
    kept = tuple(
        FoldEntry(p, "kept", None, None, "folding disabled (fold=False)")
        for p, m in copied.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    )
    return copied, FoldReport(kept)


def _example_batch(model: nn.Module, size: tuple[int, int, int]) -> tuple[torch.Tensor, object]:
    """Zeros of batch 2 (so torch.export keeps batch symbolic), or 1 for a model that hard-codes it.

    A model that only runs at batch 1 is still exported: validate_export then shows which node
    fixes the batch, which says more than a refusal here. Returns the batch and the model's output.
    """
    errors = []
    for batch_size in (2, 1):
        batch = torch.zeros(batch_size, *size)
        try:
            with torch.inference_mode():
                output = model(batch)
        except Exception as exc:  # the model's own error, reported below if no batch size works
            errors.append(f"batch {batch_size}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        if batch_size == 1:
            logger.warning("model fails at batch 2 (%s); exporting at batch 1, run validate_export", errors[0])
        return batch, output
    raise ExportError(
        f"model forward fails on zeros of shape (N, {size[0]}, {size[1]}, {size[2]}) ({'; '.join(errors)}); "
        "check input_size against the model"
    )


def _check_logits(output: object, batch_size: int) -> int:
    if not isinstance(output, torch.Tensor) or output.dim() != 2 or output.shape[0] != batch_size:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ExportError(
            f"expected the model to return logits of shape ({batch_size}, num_classes), got {shape}; "
            "export a classifier that returns one (N, K) tensor"
        )
    return int(output.shape[1])


def _to_onnx(model: nn.Module, batch: torch.Tensor, opset: int, *, optimize: bool) -> onnx.ModelProto:
    """Run the dynamo exporter with a dynamic batch axis; return the in-memory ModelProto.

    ``optimize=False`` turns off the exporter's graph optimizer, which would otherwise fuse Conv->BN
    pairs on its own (so ``fold=False`` really leaves every BatchNorm in the graph).
    """
    try:
        program = torch.onnx.export(
            model,
            (batch,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=max(opset, _NATIVE_OPSET),
            dynamo=True,
            # AUTO: keep batch symbolic where the model allows it, specialise instead of failing
            # where it does not (x.view(1, -1)), so validation can point at the node.
            dynamic_shapes=({0: torch.export.Dim.AUTO},),
            external_data=False,
            optimize=optimize,
            verbose=False,
        )
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ExportError(
            f"torch.onnx.export could not export {type(model).__name__} at input {tuple(batch.shape)} "
            f"({type(exc).__name__}: {first}); make forward traceable by torch.export "
            "(no data-dependent Python control flow)"
        ) from exc
    if program is None:
        raise ExportError("torch.onnx.export returned no program; expected the dynamo exporter's ONNXProgram")
    return program.model_proto


def _convert_opset(
    proto: onnx.ModelProto, opset: int, layers: dict[str, str]
) -> tuple[onnx.ModelProto, dict[str, str]]:
    """Convert to an opset below the exporter's native one; drop layers whose tensor vanished."""
    if opset >= _NATIVE_OPSET:
        return proto, layers
    try:
        converted = version_converter.convert_version(proto, opset)
    except Exception as exc:
        raise ExportError(
            f"onnx could not convert the graph from opset {_NATIVE_OPSET} to {opset} ({exc}); "
            f"use opset >= {_NATIVE_OPSET}"
        ) from exc
    unconvertible = graph_ops.drop_unknown_reduce_attribute(converted)
    if unconvertible:
        raise ExportError(
            f"nodes {unconvertible} need opset >= {_NATIVE_OPSET} (noop_with_empty_axes=1); use opset {_NATIVE_OPSET}"
        )
    tensors = {out for node in converted.graph.node for out in node.output} | {INPUT_NAME}
    lost = sorted(p for p, t in layers.items() if t not in tensors)
    if lost:
        logger.warning(
            "opset %d conversion renamed the tensors of %s; they are left out of toolkit.layers", opset, lost
        )
    return converted, {p: t for p, t in layers.items() if t in tensors}


def _finish_graph(proto: onnx.ModelProto) -> None:
    """Name the batch dim and refuse graphs with training-only nodes."""
    symbolic, out_batch = graph_ops.rename_batch_dim(proto)
    if not symbolic:
        logger.warning("exported graph fixed the input batch; marked it symbolic, run validate_export")
    if out_batch != graph_ops.BATCH_DIM:
        logger.warning(
            "output batch dim is %s, not the input batch; validate_export will show which node fixes it", out_batch
        )
    dropouts = [n.name for n in proto.graph.node if n.op_type == "Dropout"]
    training = graph_ops.training_batchnorms(proto)
    if dropouts or training:
        raise ExportError(
            f"expected an inference graph, got Dropout nodes {dropouts} and training-mode BatchNormalization "
            f"{training}; export the model in eval mode"
        )


def _write_atomically(proto: onnx.ModelProto, target: Path, opset: int) -> None:
    """Write one self-contained file next to ``target``, check the file as written, then move it into place."""

    def check(written_path: Path) -> None:
        try:
            onnx.checker.check_model(str(written_path), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(
                f"the exported graph fails onnx.checker ({str(exc).splitlines()[0]}); report it with the model"
            ) from exc
        written = graph_ops.default_opset(onnx.load(str(written_path), load_external_data=False))
        if written != opset:
            raise ExportError(f"asked for opset {opset}, the file says {written}; use opset {written} or update onnx")

    # One self-contained protobuf: every initializer is held in the proto itself (no external data).
    write_atomic(target, lambda f: f.write(proto.SerializeToString()), check=check)
