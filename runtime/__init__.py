"""Embeddable runtime for exported image classifiers: onnxruntime + numpy.

Never imports torch, click, rich or PIL, so it can ship on an edge device on its own. ``onnx`` is
imported only by ``Session.intermediates`` (it edits the graph) and for files with external data::

    from runtime import Session
    session = Session("model.onnx", provider="cpu", intra_op_threads=2)
    classes = session.predict([image])  # uint8 HWC images of any size
"""

from runtime.environment import check_environment
from runtime.errors import InputError, ModelFileError, ProviderError, RuntimeToolkitError, UnknownLayerError
from runtime.metadata import ModelMetadata, load_metadata
from runtime.session import Session

__all__ = [
    "Session",
    "ModelMetadata",
    "load_metadata",
    "check_environment",
    "RuntimeToolkitError",
    "ModelFileError",
    "ProviderError",
    "InputError",
    "UnknownLayerError",
]
