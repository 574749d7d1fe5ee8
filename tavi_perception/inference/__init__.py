"""Inference engines (ONNX Runtime TensorRT -> CUDA -> CPU; torch) with shared pre/post-processing."""

from tavi_perception.inference.engines import (
    PROVIDER_PREFERENCE,
    Detections,
    OnnxRuntimeEngine,
    OrtOptions,
    TorchEngine,
    create_engine,
    select_providers,
)

__all__ = [
    "PROVIDER_PREFERENCE",
    "Detections",
    "OnnxRuntimeEngine",
    "OrtOptions",
    "TorchEngine",
    "create_engine",
    "select_providers",
]
