"""End-to-end latency over DDS: image published -> guidance received, at 15 and 30 fps.

A publisher node in this process sends pre-rendered simulator frames (stamped with the wall clock at
publication) to a perception_node process at a fixed rate; the same process receives the guidance and
computes, per rate: latency p50/p99 (guidance receipt minus image stamp, one clock), throughput, and
drops (frames published that were never processed: no guidance, or rejected as stale). The node's
own diagnostics (processing and inference time, transport drops) are recorded beside them.

    .venv/bin/python bench/bench_e2e.py                     # 15 and 30 fps, 60 s each, 512² mono8
    .venv/bin/python bench/bench_e2e.py --duration 10 --fps 30
    .venv/bin/python bench/bench_e2e.py --model runs/flip/tavi_keypoints.onnx --out runs/e2e_flip.json

Results: bench/results/e2e.json (the command, machine, model and one entry per rate).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from tavi_msgs.msg import Guidance
from tqdm import tqdm

from tavi_perception.core.pipeline import shipped_model_path
from tavi_perception.inference.engines import file_sha256
from tavi_perception.ros.imaging import numpy_to_image
from tavi_perception.ros.messages import stamp_ns
from tavi_perception.ros.recorder import LoopRecorder
from tavi_perception.runners.processes import NodeProcesses, NodeSpec
from tavi_perception.sim import ProcedureSimulator, sample_case

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"latency_ms_p50": 8.0, "latency_ms_p99": 15.0, "dropped": 0}


def render_frames(count: int, size: int, seed: int) -> tuple[list[np.ndarray], float]:
    """``count`` frames of a simulated procedure (timeline drive) and the case's mm per pixel."""
    sim = ProcedureSimulator(sample_case(seed), image_size=size)
    frames = [sim.step().image for _ in tqdm(range(count), desc="rendering frames", file=sys.stderr)]
    return frames, sim.mm_per_px


def run_rate(
    recorder: LoopRecorder, frames: list[np.ndarray], fps: float, duration_s: float, warmup_s: float
) -> dict:
    """Publish at ``fps`` for ``warmup_s`` (not counted) then ``duration_s``; return the figures."""
    node = recorder.node
    publisher = node.create_publisher(Image, "bench/image", qos_profile_sensor_data)
    received: dict[int, tuple[float, Guidance]] = {}

    def on_guidance(msg: Guidance) -> None:
        received[stamp_ns(msg.header.stamp)] = (node.get_clock().now().nanoseconds * 1e-9, msg)

    subscription = node.create_subscription(
        Guidance, "guidance", on_guidance, QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    )
    deadline = time.monotonic() + 60
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("perception_node never subscribed bench/image")
        recorder.spin_once(0.05)
    period_s = 1.0 / fps
    measured: list[int] = []
    total = round((warmup_s + duration_s) * fps)
    start = time.monotonic()
    for i in tqdm(range(total), desc=f"{fps:g} fps", file=sys.stderr):
        due = start + i * period_s
        while (wait := due - time.monotonic()) > 0:
            recorder.spin_once(min(wait, 0.002))
        msg = numpy_to_image(frames[i % len(frames)], "mono8")
        msg.header.frame_id = "fluoro"
        msg.header.stamp = node.get_clock().now().to_msg()
        publisher.publish(msg)
        if i * period_s >= warmup_s:
            measured.append(stamp_ns(msg.header.stamp))
    drain = time.monotonic() + 1.0
    while time.monotonic() < drain:
        recorder.spin_once(0.01)
    node.destroy_subscription(subscription)
    node.destroy_publisher(publisher)

    latencies, processed = [], 0
    for stamp in measured:
        if stamp in received:
            arrival_s, guidance = received[stamp]
            if not guidance.invalid_reason.startswith("stale frame"):
                processed += 1
                latencies.append(1e3 * (arrival_s - stamp * 1e-9))
    lat = np.asarray(latencies)
    return {
        "fps": fps,
        "duration_s": duration_s,
        "published": len(measured),
        "processed": processed,
        "dropped": len(measured) - processed,
        "throughput_hz": processed / duration_s,
        "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
        "latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else None,
        "latency_ms_mean": float(lat.mean()) if lat.size else None,
        "latency_ms_max": float(lat.max()) if lat.size else None,
        "node_diagnostics": dict(recorder.perception_diagnostics),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fps", type=float, nargs="+", default=[15.0, 30.0], help="rates to measure")
    parser.add_argument(
        "--duration", type=float, default=60.0, help="[s] measured time per rate (default 60)"
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="[s] unmeasured start per rate (default 3)")
    parser.add_argument("--size", type=int, default=512, help="[px] square frame side (default 512)")
    parser.add_argument("--frames", type=int, default=150, help="distinct frames rendered and cycled")
    parser.add_argument("--backend", default="auto", help="perception backend parameter (default auto)")
    parser.add_argument("--threads", type=int, default=2, help="inference threads (default 2)")
    parser.add_argument("--ort-provider", default="auto", help="ort_provider parameter (default auto)")
    parser.add_argument("--trt-fp16", action="store_true", help="trt_fp16 parameter: TensorRT in float16")
    parser.add_argument("--trt-cache", default="", help="trt_engine_cache_path parameter (default: none)")
    parser.add_argument("--model", type=Path, help="model file (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "e2e.json")
    args = parser.parse_args()

    frames, mm_per_px = render_frames(args.frames, args.size, seed=0)
    model = args.model.resolve() if args.model else shipped_model_path()
    params = {
        "model_path": str(model),
        "mm_per_px": float(mm_per_px),
        "calibration_width_px": int(args.size),
        "backend": args.backend,
        "inference_threads": int(args.threads),
        "ort_provider": args.ort_provider,
        "trt_fp16": bool(args.trt_fp16),
        "trt_engine_cache_path": args.trt_cache,
        "diagnostics_period_s": 0.5,
    }
    recorder = LoopRecorder("bench_e2e", overlay=False)
    spec = NodeSpec(
        "perception_node", "tavi_perception.ros.perception_node", params, {"image": "bench/image"}
    )
    procs = NodeProcesses(ROOT / "runs" / "bench_e2e_logs", [spec])  # runs/ is not versioned
    runs = []
    try:
        for fps in args.fps:
            runs.append(run_rate(recorder, frames, fps, args.duration, args.warmup))
            if procs.dead():
                raise RuntimeError(f"perception_node died:\n{procs.log_tail('perception_node')}")
            r = runs[-1]
            print(
                f"{fps:g} fps: p50 {r['latency_ms_p50']:.2f} ms, p99 {r['latency_ms_p99']:.2f} ms, "
                f"{r['throughput_hz']:.1f} Hz, dropped {r['dropped']} of {r['published']}"
            )
    finally:
        procs.stop()
        recorder.close()
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    model_name = model.relative_to(ROOT) if model.is_relative_to(ROOT) else model
    result = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "model": {"path": str(model_name), "sha256": file_sha256(model)},
        "image": f"{args.size}x{args.size} mono8",
        "transport": "FastDDS, localhost; image best effort depth 1 (SensorDataQoS), guidance reliable",
        "goals": GOALS,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
