"""GPU latency of ours (with and without the flip test) and the two published designs: ONNX Runtime CUDA,
ONNX Runtime TensorRT fp16 and torch; optionally the perception node end to end on the GPU.

    .venv/bin/python bench/bench_gpu.py                  # -> bench/results/gpu.json
    .venv/bin/python bench/bench_gpu.py --e2e-duration 20   # also the node over DDS (bench_e2e.py)

Needs a CUDA machine: ONNX Runtime's GPU build (``onnxruntime-gpu``, README "GPU inference") for the
ONNX Runtime rows, a CUDA build of torch for the torch rows; each part that is missing is skipped with
the reason in the results, and with neither the script exits with status 2 and says so. Per model and
engine: the graph alone on a preprocessed 1-frame input (p50/p99 over ``--runs``; torch synchronises
the device after each call) and, for ONNX Runtime, end to end on a 512² mono8 frame (``engine.infer``:
CPU pre-processing, copy, graph, copy back, post-processing). TensorRT builds its engines on the first
call (minutes for the ResNet-34); they are cached in ``--trt-cache`` and not timed. The machine (GPU
name, driver, versions) goes with the results.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import onnxruntime as ort
import torch
from benchlib import RESULTS_DIR, bench_parser, latency_ms, synthetic_frame, write_results
from model_variants import ROOT, Variant, deploy_model, size_of, variants

from tavi_perception.inference.engines import OnnxRuntimeEngine, OrtOptions
from tavi_perception.inference.processing import preprocess

ORT_ENGINES = {  # label -> (requested provider, TensorRT fp16)
    "onnxruntime CUDA fp32": ("cuda", False),
    "onnxruntime TensorRT fp16": ("tensorrt", True),
}


def machine_info() -> dict[str, object]:
    info: dict[str, object] = {
        "processor": platform.processor() or platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": ort.get_available_providers(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        info["nvidia_smi"] = subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as err:
        info["nvidia_smi"] = f"not available: {err}"
    return info


def ort_rows(v: Variant, args, cache: Path) -> list[dict]:
    rows = []
    image = synthetic_frame(512)
    for label, (provider, fp16) in ORT_ENGINES.items():
        options = OrtOptions(provider, str(cache), trt_fp16=fp16)
        engine = OnnxRuntimeEngine(v.onnx, threads=args.threads, options=options)
        row: dict[str, object] = {"model": v.label, "engine": label, "backend": engine.backend}
        if engine.fallback:
            rows.append(row | {"skipped": engine.fallback})
            continue
        x = preprocess(image, engine.input_size)
        engine.run(x)  # TensorRT builds (or loads) its engine here
        row["graph_only"] = latency_ms(lambda e=engine, x=x: e.run(x), args.runs, args.warmup)
        row["end_to_end_512_mono8"] = latency_ms(lambda e=engine: e.infer(image), args.runs, args.warmup)
        rows.append(row)
    return rows


def torch_rows(v: Variant, args) -> list[dict]:
    model = deploy_model(v).cuda()
    x = torch.from_numpy(preprocess(synthetic_frame(512), v.input_size)).cuda()
    rows = []
    for label, dtype in (("torch CUDA fp32", None), ("torch CUDA fp16 autocast", torch.float16)):

        def call(dtype=dtype) -> None:
            with (
                torch.inference_mode(),
                torch.autocast("cuda", dtype=dtype or torch.float16, enabled=bool(dtype)),
            ):
                model(x)
            torch.cuda.synchronize()

        rows.append(
            {"model": v.label, "engine": label, "graph_only": latency_ms(call, args.runs, args.warmup)}
        )
    return rows


def node_e2e(args) -> dict[str, object]:
    """bench_e2e.py with the node on the GPU provider (its own result file, summarised here)."""
    out = Path(args.out).with_name("e2e_gpu.json")
    command = [sys.executable, str(ROOT / "bench" / "bench_e2e.py"), "--fps", "30", "--out", str(out)]
    command += ["--duration", str(args.e2e_duration), "--ort-provider", "tensorrt", "--trt-fp16"]
    command += ["--trt-cache", str(args.trt_cache)]
    done = subprocess.run(command, capture_output=True, text=True)
    summary = {"command": " ".join(command[1:]), "returncode": done.returncode, "file": str(out)}
    if done.returncode == 0 and out.is_file():
        summary["result"] = json.loads(out.read_text())
    else:
        summary["stderr_tail"] = done.stderr[-3000:]
    return summary


def main() -> int:
    p = bench_parser(__doc__, RESULTS_DIR / "gpu.json")
    p.add_argument("--published-input", type=int, default=256, help="network input of the published designs")
    p.add_argument("--baseline", type=Path, help="trained checkpoint of the 2025 grouped ResNet-34")
    p.add_argument("--mobilenetv2", type=Path, help="trained checkpoint of the 2021 MobileNetV2")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime CPU threads (default 2)")
    p.add_argument("--runs", type=int, default=500, help="timed runs per model and engine (default 500)")
    p.add_argument("--warmup", type=int, default=50, help="untimed runs first (default 50)")
    p.add_argument(
        "--trt-cache", type=Path, default=ROOT / "runs" / "trt_cache", help="TensorRT engine cache"
    )
    p.add_argument("--e2e-duration", type=float, default=0.0, help="[s] node end to end at 30 fps (0: skip)")
    args = p.parse_args()
    gpu_ort = any(
        p in ort.get_available_providers() for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
    )
    if not (gpu_ort or torch.cuda.is_available()):
        print(
            "bench_gpu: no CUDA here: this ONNX Runtime has no GPU provider "
            f"({', '.join(ort.get_available_providers())}; install onnxruntime-gpu, README 'GPU inference') "
            "and torch sees no CUDA device. Nothing measured.",
            file=sys.stderr,
        )
        return 2
    args.trt_cache.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {
        "command": "bench/bench_gpu.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
    }
    rows: list[dict] = []
    trained = {k: v for k, v in (("baseline", args.baseline), ("mobilenetv2", args.mobilenetv2)) if v}
    with tempfile.TemporaryDirectory() as tmp:
        for v in variants(Path(tmp), args.published_input, trained):
            size = size_of(v) | {"network_input": v.input_size, "weights": v.weights}
            found = ort_rows(v, args, args.trt_cache) if gpu_ort else []
            found += torch_rows(v, args) if torch.cuda.is_available() else []
            for row in found:
                rows.append(row | size)
                p50 = row.get("graph_only", {}).get("p50_ms", float("nan"))
                print(
                    f"{v.label:32s} {row['engine']:28s} graph p50 {p50:8.3f} ms {row.get('skipped', '')}",
                    flush=True,
                )
    if not torch.cuda.is_available():
        results["torch"] = "skipped: torch sees no CUDA device (a CPU build of torch)"
    if not gpu_ort:
        results["onnxruntime"] = "skipped: the CPU build of ONNX Runtime (install onnxruntime-gpu)"
    results["results"] = rows
    if args.e2e_duration > 0 and gpu_ort:
        results["node_end_to_end"] = node_e2e(args)
    write_results(args.out, results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
