"""Edge-deployment toolkit for image CNNs: train with PyTorch, export to ONNX, run with ONNX Runtime."""

__version__ = "0.1.0"
