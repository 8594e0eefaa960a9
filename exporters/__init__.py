"""torch -> ONNX: exact BatchNorm folding, export with metadata, validation against torch.

The data flow is ``fold_batchnorm`` -> ``export_onnx`` -> ``validate_export`` (and
``diagnose_export`` to find the first layer whose output differs).
"""

from exporters.errors import ExportError, FoldError, ValidationError
from exporters.export import ExportResult, export_onnx
from exporters.fold import FoldEntry, FoldReport, fold_batchnorm
from exporters.validate import DiagnoseReport, ValidationReport, diagnose_export, validate_export

__all__ = [
    "fold_batchnorm",
    "export_onnx",
    "validate_export",
    "diagnose_export",
    "FoldReport",
    "FoldEntry",
    "ExportResult",
    "ValidationReport",
    "DiagnoseReport",
    "ExportError",
    "FoldError",
    "ValidationError",
]
