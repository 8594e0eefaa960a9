"""Exact BatchNorm folding: ``fold_batchnorm(model) -> (folded_model, FoldReport)``.

A BN in eval mode is a per-channel affine map. It folds *backward* into the Conv/Linear whose output
only it reads, or *forward* into the next Conv/Linear when every op in between commutes with that
map. Anything that would only be approximately equal is kept, with the reason in the report.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from exporters._fold_math import bn_affine, fold_into_next, fold_into_previous
from exporters._fold_graph import UNKNOWN_SHAPE, call_counts
from exporters._fold_plan import Target, backward_target, forward_target
from exporters.errors import FoldError

__all__ = ["FoldEntry", "FoldReport", "fold_batchnorm", "require_running_stats"]

logger = logging.getLogger(__name__)

_FOLDABLE = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass(frozen=True)
class FoldEntry:
    """What happened to one BatchNorm layer (``bn`` is its module path)."""

    bn: str
    action: Literal["folded", "kept"]
    into: str | None
    direction: Literal["backward", "forward"] | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of this entry."""
        return asdict(self)


@dataclass(frozen=True)
class FoldReport:
    """Every BatchNorm of the model, folded or kept, in forward order."""

    entries: tuple[FoldEntry, ...] = ()

    @property
    def folded(self) -> list[FoldEntry]:
        """Entries of the BNs that were folded into a Conv/Linear."""
        return [e for e in self.entries if e.action == "folded"]

    @property
    def kept(self) -> list[FoldEntry]:
        """Entries of the BNs left in the model, each with the reason."""
        return [e for e in self.entries if e.action == "kept"]

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        """``{"folded": [...], "kept": [...]}`` as plain dicts (for ``toolkit.export`` metadata)."""
        return {"folded": [e.to_dict() for e in self.folded], "kept": [e.to_dict() for e in self.kept]}

    def __str__(self) -> str:
        lines = [f"BatchNorm folding: {len(self.folded)} folded, {len(self.kept)} kept"]
        for e in self.folded:
            lines.append(f"  folded {e.bn} {e.direction} into {e.into}")
        for e in self.kept:
            lines.append(f"  kept   {e.bn}: {e.reason}")
        return "\n".join(lines)


def require_running_stats(model: nn.Module, error: type[Exception] = FoldError) -> None:
    """Raise ``error`` naming the first BatchNorm without running statistics (no exact eval form)."""
    for path, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and (
            module.running_mean is None or module.running_var is None
        ):
            raise error(
                f"BatchNorm {path!r} has no running statistics (track_running_stats=False), so its output "
                "for one image would depend on the other images of the batch and it cannot be folded or "
                "exported exactly; rebuild it with track_running_stats=True and recalibrate or retrain"
            )


def fold_batchnorm(model: nn.Module, *, input_size: tuple[int, ...] | None = None) -> tuple[nn.Module, FoldReport]:
    """Fold every BatchNorm that folds exactly into a Conv/Linear of an eval-mode deep copy of ``model``.

    The caller's model is not modified (nor its train/eval mode). Folded BNs become ``nn.Identity``.
    ``input_size`` is the shape of one input without the batch axis ((C, H, W) for images). With it
    every fold checks the tensor ranks it depends on; without it (or when running the model on that
    shape fails) a rank is known only after a flatten, and a fold that needs an unknown rank is not
    made: the BN is kept with "shape unknown: pass input_size". Raises ``FoldError`` for a BN without
    running statistics.
    """
    folded = copy.deepcopy(model).eval()
    require_running_stats(folded)
    bn_paths = [path for path, m in folded.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bn_paths:
        return folded, FoldReport()
    try:
        graph = fx.symbolic_trace(folded)
    except Exception as exc:  # any tracing failure means: no data flow to reason about, fold nothing
        reason = f"model could not be traced: {_first_line(exc)}"
        logger.warning("BatchNorm folding skipped: %s", reason)
        return folded, FoldReport(tuple(FoldEntry(p, "kept", None, None, reason) for p in bn_paths))
    failure = _propagate_shapes(graph, input_size)
    entries = _fold_traced(graph, folded)
    if failure:  # say why the shape is unknown although input_size was given
        entries = [replace(e, reason=e.reason.replace(UNKNOWN_SHAPE, f"shape unknown: {failure}")) for e in entries]
    seen = {e.bn for e in entries}
    entries += [FoldEntry(p, "kept", None, None, "never called in forward") for p in bn_paths if p not in seen]
    report = FoldReport(tuple(entries))
    logger.info("%s", report)
    return folded, report


def _fold_traced(graph: fx.GraphModule, root: nn.Module) -> list[FoldEntry]:
    """Fold the BNs of ``root`` in forward order, using ``graph`` (its trace) for the data flow."""
    counts = call_counts(graph.graph)
    entries: list[FoldEntry] = []
    for node in graph.graph.nodes:
        if node.op != "call_module" or not isinstance(
            root.get_submodule(str(node.target)), nn.modules.batchnorm._BatchNorm
        ):
            continue
        path = str(node.target)
        if any(e.bn == path for e in entries):
            continue  # a BN called several times was already reported at its first call
        entries.append(_fold_one(node, path, root, counts))
    return entries


def _fold_one(node: fx.Node, path: str, root: nn.Module, counts: Counter[str]) -> FoldEntry:
    bn = root.get_submodule(path)
    if not isinstance(bn, _FOLDABLE):
        return FoldEntry(path, "kept", None, None, f"{type(bn).__name__} is not folded (only BatchNorm1d/2d)")
    if counts[path] != 1:
        return FoldEntry(path, "kept", None, None, f"it is called {counts[path]} times")
    scale, shift = bn_affine(bn)
    backward = backward_target(node, root, counts)
    if isinstance(backward, Target):
        fold_into_previous(backward.layer, scale, shift)
        _replace_with_identity(root, path)
        return FoldEntry(path, "folded", backward.path, "backward", f"{backward.path} output feeds only this BN")
    forward = forward_target(node, root, counts, scale)
    if isinstance(forward, Target):
        fold_into_next(forward.layer, scale, shift, forward.block)
        _replace_with_identity(root, path)
        return FoldEntry(path, "folded", forward.path, "forward", "only ops that commute with it stand between")
    return FoldEntry(path, "kept", None, None, f"{forward} (and backward: {backward})")


def _replace_with_identity(root: nn.Module, path: str) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, nn.Identity())


def _propagate_shapes(graph: fx.GraphModule, input_size: tuple[int, ...] | None) -> str | None:
    """Record tensor shapes on the graph nodes (for rank checks), batch of one; why it failed, if it did."""
    if input_size is None:
        return None
    weight = next(graph.parameters(), torch.zeros(()))  # run where and in the dtype the model holds its weights
    try:
        with torch.inference_mode():
            ShapeProp(graph).propagate(torch.zeros(1, *input_size, dtype=weight.dtype, device=weight.device))
    except Exception as exc:  # without shapes, folds that need an unknown rank are refused
        for node in graph.graph.nodes:  # shapes of the ops before the failure describe an input it refuses
            node.meta.pop("tensor_meta", None)
        failure = f"running the model on input_size {tuple(input_size)} failed ({_first_line(_root_cause(exc))})"
        logger.warning("BatchNorm folding without tensor shapes: %s", failure)
        return failure
    return None


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost ``raise ... from`` cause (ShapeProp wraps the model's own error in its own)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
