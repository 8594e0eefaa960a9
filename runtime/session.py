"""``Session``: an onnxruntime session for one exported image classifier.

Public methods check their input once and then call private ones that only compute, so every entry
point (run, predict, intermediates) shares the same checks and none is repeated per batch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from runtime.checks import check_batch, looks_unnormalized
from runtime.errors import InputError, UnknownLayerError
from runtime.metadata import ModelMetadata, read_metadata, session_input_dims
from runtime.modelfile import check_graph_io, check_model_file
from runtime.preprocess import check_image_sequence, preprocess_images
from runtime.providers import create_session, make_session_options, provider_chain

__all__ = ["Session"]

logger = logging.getLogger(__name__)


class Session:
    """Run an exported model with onnxruntime on a chosen provider, with checked inputs.

    ``provider`` is "cpu" or "cuda"; "cuda" raises ``ProviderError`` unless CUDA is really active.
    Threads left as None use onnxruntime's defaults; ``spin_wait=False`` stops idle worker threads
    from spinning; ``graph_optimization`` is one of "disable", "basic", "extended", "all".
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        provider: str = "cpu",
        *,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        spin_wait: bool = False,
        graph_optimization: str = "all",
    ) -> None:
        provider_chain(provider)  # an unknown name fails before any file is read
        self.path: Path = Path(path)
        self.provider: str = provider
        check_model_file(self.path)
        self._options, self.settings = make_session_options(
            intra_op_threads, inter_op_threads, spin_wait, graph_optimization
        )
        self._session = create_session(os.fspath(self.path), self._options, provider, self.path)
        check_graph_io(self._session, self.path)
        self.metadata: ModelMetadata = read_metadata(self._session)
        self.providers_active: list[str] = self._session.get_providers()
        self.settings["providers"] = list(self.providers_active)
        self._input_name: str = self._session.get_inputs()[0].name
        self._output_name: str = self._session.get_outputs()[0].name
        self._expected = _expected_chw(session_input_dims(self._session), self.metadata.input_size)
        self._layer_sessions: dict[frozenset[str], ort.InferenceSession] = {}
        self._warned_unnormalized = False

    @property
    def inference_session(self) -> ort.InferenceSession:
        """The raw onnxruntime session (no input checks), e.g. for latency benchmarks."""
        return self._session

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, K) for a float32 (N, C, H, W) batch that is already resized and normalized."""
        check_batch(batch, self._expected)
        self._warn_if_unnormalized(batch)
        return self._run(batch)

    def preprocess(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 HWC images (gray, RGB or RGBA; any size) -> normalized float32 (N, C, H, W)."""
        size = self.metadata.input_size
        if size is None:
            raise InputError(
                f"model {self.metadata.model!r} has no fixed input size (no toolkit.input_size and free "
                "H/W dims), so images cannot be resized for it; resize and normalize yourself and call run"
            )
        return preprocess_images(images, size, self.metadata.mean, self.metadata.std)

    def predict(self, images: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """Class indices (N,) int64 for uint8 HWC images, preprocessed and run ``batch_size`` at a time."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        check_image_sequence(images)  # fail on a bad container before doing any work
        predictions = []
        for start in range(0, len(images), batch_size):
            batch = self.preprocess(images[start : start + batch_size])  # (B, C, H, W)
            predictions.append(np.argmax(self._run(batch), axis=1))
        return np.concatenate(predictions).astype(np.int64)

    def layer_names(self) -> list[str]:
        """Torch module paths recorded in ``toolkit.layers``, usable with ``intermediates``."""
        return list(self.metadata.layers)

    def intermediates(self, batch: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Outputs of the named layers (torch module paths) for ``batch``: name -> array.

        Builds, once per set of names, a second session on a copy of the model that also outputs
        those tensors, with the same provider and options as this one. This edits the graph, so it
        imports ``onnx``, which the other methods never need.
        """
        names = self._check_layer_names(names)
        check_batch(batch, self._expected)
        return self._intermediates(batch, names)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run([self._output_name], {self._input_name: batch})[0]

    def _intermediates(self, batch: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        tensors = list(dict.fromkeys(self.metadata.layers[name] for name in names))
        outputs = self._intermediate_session(names).run(tensors, {self._input_name: batch})
        arrays = dict(zip(tensors, outputs, strict=True))
        return {name: arrays[self.metadata.layers[name]] for name in names}

    def _intermediate_session(self, names: Sequence[str]) -> ort.InferenceSession:
        """The cached session whose graph also outputs the tensors of ``names``."""
        key = frozenset(names)
        if key not in self._layer_sessions:
            from runtime.graph import add_outputs, load_full_model  # imports onnx (~20 MB resident)

            model = add_outputs(load_full_model(self.path), [self.metadata.layers[name] for name in sorted(key)])
            self._layer_sessions[key] = create_session(
                model.SerializeToString(), self._options, self.provider, self.path
            )
        return self._layer_sessions[key]

    def _check_layer_names(self, names: Sequence[str] | str) -> list[str]:
        requested = [names] if isinstance(names, str) else list(names)
        valid = self.layer_names()
        if not valid:
            raise UnknownLayerError(
                f"model {self.metadata.model!r} records no layers (toolkit.layers is empty); "
                "re-export it with exporters.export_onnx to read intermediate tensors"
            )
        if not requested:
            raise InputError(f"expected at least one layer name, got none; valid names: {valid}")
        unknown = [name for name in requested if name not in self.metadata.layers]
        unavailable = self.metadata.export.get("layers_unavailable") or {}
        for name in unknown:
            if name in unavailable:  # a module of the model whose output the folded graph does not hold
                raise UnknownLayerError(f"layer {name!r} of model {self.metadata.model!r} cannot be read from this "
                                        f"graph: {unavailable[name]}; readable names: {valid}")
        if unknown:
            raise UnknownLayerError(f"unknown layer names {unknown}: expected names from {valid}")
        return requested

    def _warn_if_unnormalized(self, batch: np.ndarray) -> None:
        if self._warned_unnormalized or not self.metadata.normalized or not looks_unnormalized(batch):
            return
        self._warned_unnormalized = True  # once per session: a loop over batches should not flood the log
        logger.warning(
            "input values span %.1f..%.1f, which looks like raw 0..255 pixels, but model %r expects "
            "normalized input; use Session.predict(images) or scale to 0..1 and normalize with mean/std",
            float(batch.min()),
            float(batch.max()),
            self.metadata.model,
        )

    def __repr__(self) -> str:
        return f"Session({str(self.path)!r}, provider={self.provider!r}, active={self.providers_active})"


def _expected_chw(
    graph_dims: list[int | None], metadata_size: tuple[int, int, int] | None
) -> tuple[int | None, int | None, int | None]:
    """(C, H, W) to check batches against: the graph's fixed dims, else the metadata's."""
    graph = graph_dims[1:] if len(graph_dims) == 4 else [None, None, None]
    meta = metadata_size or (None, None, None)
    return (graph[0] or meta[0], graph[1] or meta[1], graph[2] or meta[2])
