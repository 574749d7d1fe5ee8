"""Inference engines: ONNX Runtime (TensorRT -> CUDA -> CPU, chosen automatically) and torch.

Both run the same deploy graph (``model.networks.DeployModel``: image -> normalised xy, visibility,
group probability) behind the same pre- and post-processing (``inference.processing``), so for one
model they return the same :class:`Detections` up to floating-point rounding.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from tavi_perception.inference.processing import preprocess, to_image_pixels
from tavi_perception.keypoints import NUM_KEYPOINTS, Group

LOG = logging.getLogger(__name__)

PROVIDER_PREFERENCE: tuple[str, ...] = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
BACKENDS = ("auto", "onnxruntime", "torch")
# ONNX Runtime provider requests (node parameter ``ort_provider``) -> the providers tried, in order.
# TensorRT needs the CUDA provider beside it (for the nodes it cannot take) and both fall back to CPU.
PROVIDER_CHOICES: dict[str, tuple[str, ...]] = {
    "auto": PROVIDER_PREFERENCE,
    "tensorrt": PROVIDER_PREFERENCE,
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "cpu": ("CPUExecutionProvider",),
}
INPUT_NAME = "image"
OUTPUT_NAMES = ("xy", "visibility", "group_probability")


@dataclass(frozen=True)
class Detections:
    """One frame's network output, in the pixels of the image given to ``infer``."""

    xy_px: np.ndarray  # (11, 2) float64, schema order, image pixels (corner origin, x right, y down)
    visibility: np.ndarray  # (11,) probability that each keypoint is visible, 0..1
    group_probability: np.ndarray  # (3,) probability that each group is present, 0..1 (Group order)
    backend: str  # e.g. "onnxruntime:CPUExecutionProvider" or "torch:cpu"


class InferenceEngine(Protocol):
    input_size: int
    backend: str

    def infer(self, image: np.ndarray) -> Detections: ...


def _detections(outputs: list[np.ndarray], image_shape: tuple[int, ...], backend: str) -> Detections:
    xy, vis, group = (np.asarray(o, dtype=np.float64)[0] for o in outputs)
    if xy.shape != (NUM_KEYPOINTS, 2) or vis.shape != (NUM_KEYPOINTS,) or group.shape != (len(Group),):
        raise RuntimeError(f"model outputs have unexpected shapes {xy.shape}, {vis.shape}, {group.shape}")
    return Detections(to_image_pixels(xy, image_shape), vis, group, backend)


def select_providers(
    available: list[str] | tuple[str, ...], preferred: tuple[str, ...] = PROVIDER_PREFERENCE
) -> list[str]:
    """The preferred providers that are available, in preference order; logs each one skipped.

    CPU is always last (ONNX Runtime always has it), so the list is never empty.
    """
    chosen = [p for p in preferred if p in available]
    for p in preferred:
        if p not in available:
            LOG.info("ONNX Runtime provider %s not available in this build; falling back", p)
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


@dataclass(frozen=True)
class OrtOptions:
    """How ONNX Runtime should run a model: which providers, and the TensorRT provider's settings."""

    provider: str = "auto"  # a key of PROVIDER_CHOICES
    trt_engine_cache_path: str = ""  # folder for built TensorRT engines; empty: rebuild at every start
    trt_fp16: bool = False  # let TensorRT run layers in float16 (TensorRT only; CUDA stays float32)

    def __post_init__(self) -> None:
        if self.provider not in PROVIDER_CHOICES:
            choices = ", ".join(PROVIDER_CHOICES)
            raise ValueError(f"unknown provider {self.provider!r}; choose one of {choices}")

    def provider_options(self, providers: list[str]) -> list[dict[str, str]]:
        """ONNX Runtime's per-provider option dicts for ``providers`` (same order)."""
        trt = {"trt_fp16_enable": str(self.trt_fp16)}
        if self.trt_engine_cache_path:
            trt |= {"trt_engine_cache_enable": "True", "trt_engine_cache_path": self.trt_engine_cache_path}
        return [dict(trt) if p == "TensorrtExecutionProvider" else {} for p in providers]


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file: a model's identity in metadata, diagnostics and reports."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_model_metadata(model_path: Path) -> dict:
    """Metadata of a shipped model: the JSON beside it, or the ONNX file's own metadata properties."""
    sidecar = model_path.with_suffix(".json")
    if sidecar.is_file():
        return json.loads(sidecar.read_text())
    import onnx

    props = {p.key: p.value for p in onnx.load(str(model_path), load_external_data=False).metadata_props}
    return json.loads(props["tavi_perception"]) if "tavi_perception" in props else {}


class OnnxRuntimeEngine:
    """ONNX Runtime session over the exported deploy graph.

    Providers are tried in the order of ``options.provider`` (auto and tensorrt: TensorRT -> CUDA -> CPU;
    cuda: CUDA -> CPU) among those this ONNX Runtime build reports; a provider that is reported but fails
    to initialise (missing CUDA libraries, say) is dropped, and the provider actually running is checked
    and logged. ``fallback`` says why the engine runs on another provider than the one asked for
    (empty when it runs on it; ``auto`` asks for none in particular).
    """

    def __init__(
        self,
        model_path: str | Path,
        threads: int = 2,
        providers: tuple[str, ...] | None = None,
        options: OrtOptions | None = None,
    ):
        import onnxruntime as ort

        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {self.model_path}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.options = options or OrtOptions()
        preferred = providers or PROVIDER_CHOICES[self.options.provider]
        wanted = select_providers(ort.get_available_providers(), preferred)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = self._start_session(ort, options, wanted)
        running = self.session.get_providers()
        if running[0] != wanted[0]:
            LOG.warning("ONNX Runtime could not start %s; running on %s", wanted[0], running[0])
        self.fallback = ""
        if self.options.provider != "auto" and running[0] != preferred[0]:
            self.fallback = (
                f"asked for {preferred[0]}, running on {running[0]} (available in this ONNX Runtime build: "
                f"{', '.join(ort.get_available_providers())}; the GPU providers need onnxruntime-gpu)"
            )
            LOG.warning("ONNX Runtime provider %s", self.fallback)
        LOG.info("ONNX Runtime providers %s (asked for %s), %d threads", running, wanted, threads)
        shape = self.session.get_inputs()[0].shape
        if not (isinstance(shape[2], int) and shape[2] == shape[3]):
            raise ValueError(f"{self.model_path}: expected a square static input, got shape {shape}")
        self.input_size = int(shape[2])
        self.backend = f"onnxruntime:{running[0]}"
        self.metadata = read_model_metadata(self.model_path)

    def _start_session(self, ort, options, providers: list[str]):
        """A session on the first provider list that starts, dropping the head provider after a failure."""
        remaining = list(providers)
        while True:
            try:
                return ort.InferenceSession(
                    str(self.model_path),
                    options,
                    providers=remaining,
                    provider_options=self.options.provider_options(remaining),
                )
            except Exception as err:  # ONNX Runtime raises several types for a provider that fails to start
                if len(remaining) == 1:
                    raise
                LOG.warning(
                    "ONNX Runtime could not start %s (%s); trying %s", remaining[0], err, remaining[1]
                )
                remaining = remaining[1:]

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Deploy outputs (xy, visibility, group_probability) for a preprocessed ``(1, 1, S, S)`` input."""
        return self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})

    def infer(self, image: np.ndarray) -> Detections:
        return _detections(self.run(preprocess(image, self.input_size)), np.shape(image), self.backend)


class TorchEngine:
    """The same deploy graph in torch, from a training checkpoint or a shipped ``.pt`` file."""

    def __init__(self, checkpoint_path: str | Path, threads: int = 2, device: str = "cpu"):
        import torch

        from tavi_perception.model.checkpoint import load_checkpoint, network_from
        from tavi_perception.model.networks import DeployModel

        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
        checkpoint = load_checkpoint(checkpoint_path)
        net, config, self.metadata = network_from(checkpoint)
        deploy = checkpoint.get("deploy", {})
        self.device = torch.device(device)
        self.model = DeployModel(net, flip_test=bool(deploy.get("flip_test", False))).to(self.device).eval()
        self.input_size = int(deploy.get("input_size", config.input_size))
        self.backend = f"torch:{self.device.type}"

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self.model(torch.from_numpy(batch).to(self.device))
        return [o.cpu().numpy() for o in out]

    def infer(self, image: np.ndarray) -> Detections:
        return _detections(self.run(preprocess(image, self.input_size)), np.shape(image), self.backend)


def create_engine(
    model_path: str | Path,
    backend: str = "auto",
    threads: int = 2,
    device: str = "cpu",
    ort_options: OrtOptions | None = None,
) -> OnnxRuntimeEngine | TorchEngine:
    """An engine for ``model_path``.

    ``backend="auto"`` picks ONNX Runtime for ``.onnx`` files and torch for ``.pt`` checkpoints;
    ``"torch"`` given an ``.onnx`` file uses the ``.pt`` of the same name beside it (shipped together).
    ``device`` applies to the torch backend only, ``ort_options`` (provider, TensorRT settings) to
    ONNX Runtime only.
    """
    path = Path(model_path)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = "onnxruntime" if path.suffix == ".onnx" else "torch"
    if backend == "onnxruntime":
        if path.suffix != ".onnx":
            raise ValueError(f"the onnxruntime backend needs an .onnx file, got {path}")
        return OnnxRuntimeEngine(path, threads=threads, options=ort_options)
    if path.suffix == ".onnx":
        path = path.with_suffix(".pt")
    if not path.is_file():
        raise FileNotFoundError(f"torch weights not found: {path}")
    return TorchEngine(path, threads=threads, device=device)
