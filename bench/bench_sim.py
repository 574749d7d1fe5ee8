"""Simulator speed on one core: ms per frame at 512² and 1024², per-case set-up, dataset throughput.

Per frame = :meth:`ProcedureSimulator.frame_at` (what ``step`` does in the timeline drive: attenuation maps
warped with the motion, delivery system drawn, quantum noise, detector blur, display curve, ground truth),
with OpenCV limited to one thread.
Frames are taken over several cases and across each case's whole timeline. The dataset figure includes
PNG encoding and writing, as ``tavi-perception dataset`` does.

Writes bench/results/sim.json. Run: .venv/bin/python bench/bench_sim.py [--cases N] [--frames N]
"""

from __future__ import annotations

import platform
import tempfile
import time

import cv2
import numpy as np
from benchlib import RESULTS_DIR, bench_parser, times_ms, write_results

from tavi_perception.sim import ProcedureSimulator, sample_case
from tavi_perception.sim.dataset import main as dataset_main

RESULTS = RESULTS_DIR / "sim.json"
BUDGET_MS_512 = 10.0


def measure(size: int, cases: int, frames: int, seed: int) -> dict[str, object]:
    """Set-up and per-frame times at ``size``; frames spread over each case's timeline."""
    setup_ms, frame_ms = [], []
    for c in range(cases):
        start = time.perf_counter()
        sim = ProcedureSimulator(sample_case(seed + c), image_size=size, fps=15.0)
        setup_ms.append(1e3 * (time.perf_counter() - start))
        sim.step()  # warm the buffers
        for t_s in np.linspace(0.0, sim.scenario.duration_s, frames):
            start = time.perf_counter()
            sim.frame_at(float(t_s))
            frame_ms.append(1e3 * (time.perf_counter() - start))
    return {
        "size_px": size,
        "cases": cases,
        "frames": len(frame_ms),
        "frame": times_ms(frame_ms),
        "case_setup": times_ms(setup_ms),
    }


def dataset_throughput(cases: int, frames_per_case: int) -> dict[str, float]:
    """Frames per second of ``tavi-perception dataset`` at 512² (set-up, rendering, PNG writing)."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["--out", tmp, "--cases", str(cases), "--frames-per-case", str(frames_per_case), "--quiet"]
        start = time.perf_counter()
        dataset_main(argv)
        elapsed = time.perf_counter() - start
    total = cases * frames_per_case
    return {
        "cases": cases,
        "frames": total,
        "seconds": round(elapsed, 2),
        "frames_per_s": round(total / elapsed, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, RESULTS)
    parser.add_argument("--cases", type=int, default=6, help="cases per image size (default 6)")
    parser.add_argument("--frames", type=int, default=60, help="frames per case (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    results = {
        "what": "ProcedureSimulator.frame_at() incl. truth, one OpenCV thread; dataset incl. PNG writing",
        "budget_ms_per_frame_512": BUDGET_MS_512,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "sizes": [measure(size, args.cases, args.frames, args.seed) for size in (512, 1024)],
        "dataset_512": dataset_throughput(cases=10, frames_per_case=20),
    }
    write_results(args.out, results)
    for r in results["sizes"]:
        f, s = r["frame"], r["case_setup"]
        print(
            f"{r['size_px']}²: {f['mean_ms']:.2f} ms/frame mean, p95 {f['p95_ms']:.2f} ms; "
            f"case set-up {s['mean_ms']:.0f} ms"
        )
    d = results["dataset_512"]
    print(f"dataset 512²: {d['frames_per_s']} frames/s ({d['frames']} frames in {d['seconds']} s)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
