"""Size and CPU latency of ours and the two published designs: parameters, multiply-adds, p50/p99.

    .venv/bin/python bench/bench_models.py            # -> bench/results/models_cpu.json

Per model: parameters, multiply-adds of one frame (convolutions and linear layers, ``model_variants``),
ONNX file size, and the latency of ONNX Runtime on the CPU with ``--threads`` threads: the graph alone
on a preprocessed input, and end to end (``engine.infer`` of a 512² mono8 frame: pre-processing, graph,
post-processing, what the perception node pays). Ours is the shipped model (and the same with the flip
test); the published designs are untrained unless ``--baseline``/``--mobilenetv2`` give trained
checkpoints (latency and size do not depend on the weights), at ``--published-input`` (the input size of
the equal-budget training commands in docs/comparison.md). The machine and its load average go with the
results: another process on the cores slows every figure.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from pathlib import Path

import onnxruntime as ort
from benchlib import RESULTS_DIR, bench_parser, latency_ms, synthetic_frame, write_results
from model_variants import size_of, variants

from tavi_perception.inference.engines import OnnxRuntimeEngine, OrtOptions
from tavi_perception.inference.processing import preprocess


def main() -> int:
    p = bench_parser(__doc__, RESULTS_DIR / "models_cpu.json")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2)")
    p.add_argument("--published-input", type=int, default=256, help="network input of the published designs")
    p.add_argument("--baseline", type=Path, help="trained checkpoint of the 2025 grouped ResNet-34")
    p.add_argument("--mobilenetv2", type=Path, help="trained checkpoint of the 2021 MobileNetV2")
    p.add_argument("--runs", type=int, default=200, help="timed runs per model (default 200)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    args = p.parse_args()
    machine = {
        "processor": platform.processor() or platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "onnxruntime": ort.__version__,
        "threads": args.threads,
        "load_average_before": os.getloadavg(),
    }
    image = synthetic_frame(512)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        trained = {"baseline": args.baseline, "mobilenetv2": args.mobilenetv2}
        for v in variants(Path(tmp), args.published_input, {k: p for k, p in trained.items() if p}):
            engine = OnnxRuntimeEngine(v.onnx, threads=args.threads, options=OrtOptions("cpu"))
            x = preprocess(image, engine.input_size)
            row = {
                "model": v.label,
                "weights": v.weights,
                "network_input": v.input_size,
                **size_of(v),
                "backend": engine.backend,
                "graph_only": latency_ms(lambda x=x, e=engine: e.run(x), args.runs, args.warmup),
                "end_to_end_512_mono8": latency_ms(lambda e=engine: e.infer(image), args.runs, args.warmup),
            }
            rows.append(row)
            print(
                f"{v.label:32s} {v.input_size}² {row['parameters'] / 1e6:6.2f} M params "
                f"{row['multiply_adds'] / 1e9:6.3f} G MACs  graph p50 {row['graph_only']['p50_ms']:7.2f} "
                f"p99 {row['graph_only']['p99_ms']:7.2f} ms  end to end p50 "
                f"{row['end_to_end_512_mono8']['p50_ms']:7.2f} ms",
                flush=True,
            )
    machine["load_average_after"] = os.getloadavg()
    command = "bench/bench_models.py " + " ".join(sys.argv[1:])
    write_results(args.out, {"command": command.strip(), "machine": machine, "results": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
