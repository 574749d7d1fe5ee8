"""Inference latency of the keypoint models with ONNX Runtime: p50/p99 per model, provider and input size.

Measures ``engine.infer(frame)`` end to end (pre-processing, graph, post-processing: what the perception
node pays per frame) and the graph alone, on CPU with ``--threads`` threads and, when this ONNX Runtime
build has them, on the CUDA and TensorRT providers. Inputs: synthetic fluoroscopy-like frames, mono8 and
mono16, at each ``--sizes``. Results go to ``--out`` (JSON) and a Markdown table beside it.

    .venv/bin/python bench/bench_inference.py                       # shipped model + baseline, CPU 2 threads
    .venv/bin/python bench/bench_inference.py --baseline runs/baseline/baseline.onnx

Without ``--baseline`` the baseline graph is exported untrained from its architecture (latency does not
depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from benchlib import latency_ms, synthetic_frame

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tavi_perception.inference.engines import OnnxRuntimeEngine  # noqa: E402
from tavi_perception.inference.processing import preprocess  # noqa: E402

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def untrained_baseline(input_size: int, folder: Path) -> Path:
    import torch

    from tavi_perception.model.checkpoint import save_checkpoint
    from tavi_perception.model.export import export
    from tavi_perception.model.networks import ModelConfig, build_model

    config = ModelConfig(arch="baseline", input_size=input_size)
    ckpt = folder / "baseline_untrained.pt"
    torch.manual_seed(0)
    save_checkpoint(
        ckpt, {"config": config.to_dict(), "model": build_model(config).state_dict(), "metadata": {}}
    )
    out = folder / "baseline_untrained.onnx"
    export(ckpt, out)
    return out


def bench_model(label: str, path: Path, providers: tuple[str, ...], runs: int, args) -> list[dict]:
    engine = OnnxRuntimeEngine(path, threads=args.threads, providers=providers)
    rows = []
    for size in args.sizes:
        for dtype in (np.uint8, np.uint16):
            img = synthetic_frame(size, dtype)
            x = preprocess(img, engine.input_size)
            e2e = latency_ms(lambda img=img: engine.infer(img), runs, args.warmup)
            graph = latency_ms(lambda x=x: engine.run(x), runs, args.warmup)
            row = {
                "model": label,
                "file": str(path),
                "backend": engine.backend,
                "threads": args.threads,
                "network_input": engine.input_size,
                "frame": f"{size}x{size} {'mono8' if dtype == np.uint8 else 'mono16'}",
                "runs": runs,
                "end_to_end": e2e,
                "graph_only": graph,
            }
            rows.append(row)
            print(
                f"{label:10s} {engine.backend:36s} {row['frame']:17s} end-to-end p50 {e2e['p50_ms']:7.2f} ms "
                f"p99 {e2e['p99_ms']:7.2f} ms | graph p50 {graph['p50_ms']:7.2f} ms",
                flush=True,
            )
    return rows


def markdown(rows: list[dict], machine: dict) -> str:
    lines = [
        f"# Inference latency ({machine['processor']}, {machine['cpus']} CPUs visible, ONNX Runtime "
        f"{machine['onnxruntime']})",
        "",
        "1-minute load average before / after: "
        f"{machine['load_average_before'][0]:.2f} / {machine['load_average_after'][0]:.2f} "
        "(a load above the CPU count means other processes competed for the cores).",
        "",
        "| model | backend | threads | net input | frame | end-to-end p50 / p99 ms | graph p50 / p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        e, g = r["end_to_end"], r["graph_only"]
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['threads']} | {r['network_input']}² | {r['frame']} | "
            f"{e['p50_ms']:.2f} / {e['p99_ms']:.2f} | {g['p50_ms']:.2f} / {g['p99_ms']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=ROOT / "models" / "tavi_keypoints.onnx")
    p.add_argument("--baseline", type=Path, help="baseline ONNX (default: export an untrained one)")
    p.add_argument("--baseline-input", type=int, default=256, help="input size of an untrained baseline")
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--baseline-runs", type=int, default=60, help="timed runs of the (slow) baseline")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "inference_cpu.json")
    args = p.parse_args()
    machine = {
        "processor": platform.processor() or platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
        "load_average_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        baseline = args.baseline or untrained_baseline(args.baseline_input, Path(tmp))
        provider_sets = [("CPUExecutionProvider",)]
        provider_sets += [
            (gp, "CPUExecutionProvider") for gp in GPU_PROVIDERS if gp in machine["available_providers"]
        ]
        rows = []
        for providers in provider_sets:
            rows += bench_model("ours", args.model, providers, args.runs, args)
            rows += bench_model("baseline", baseline, providers, args.baseline_runs, args)
    machine["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "results": rows}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(rows, machine))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
