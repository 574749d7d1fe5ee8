"""Non-scene rules (tavi_perception.core.quality): rejection rates on simulator and bad frames, and cost.

Renders simulator frames of several case seeds at times spread over each procedure (every phase, with
and without contrast) as mono8, mono16 and the mono16 frames shifted to 10 bits (a 10-bit detector in
a 16-bit container), and counts how many the rules reject (the goal: none). Then synthetic bad frames
of each kind (black with dark noise, uniform grey, white, over-exposed simulator frames, random noise)
and counts how many pass (the goal: none). Also times ``non_scene_reason`` on 512² and 1024² frames.

    .venv/bin/python bench/bench_quality.py            # writes bench/results/quality.json
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter

import numpy as np
from benchlib import RESULTS_DIR, bench_parser, write_results

from tavi_perception.core.quality import (
    QualityParams,
    frame_statistics,
    full_scale,
    non_scene_reason,
    signal_full_scale,
)
from tavi_perception.sim import SIM_VERSION, ProcedureSimulator

RESULTS = RESULTS_DIR / "quality.json"


def _bad_frames(rng: np.random.Generator, good: np.ndarray) -> dict[str, np.ndarray]:
    """One bad frame of each kind, shaped and typed like the simulator frame ``good``."""
    scale, signal = full_scale(good.dtype), signal_full_scale(good.dtype)
    shape, dtype = good.shape, good.dtype

    def cast(values: np.ndarray) -> np.ndarray:
        return np.clip(values, 0, scale).astype(dtype)

    level = rng.uniform(0.1, 0.9) * scale
    return {
        "black": cast(rng.normal(rng.uniform(0.0, 0.01) * signal, 0.002 * signal, shape)),
        "uniform": cast(np.full(shape, level) + rng.normal(0.0, 0.002 * scale, shape)),
        "white": np.full(shape, scale, dtype),
        "over_exposed": cast(good.astype(np.float64) * rng.uniform(3.0, 6.0)),
        "noise_uniform": cast(rng.uniform(0.0, scale, shape)),
        "noise_gaussian": cast(rng.normal(level, rng.uniform(0.05, 0.3) * scale, shape)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, RESULTS)
    parser.add_argument("--seeds", type=int, default=6, help="simulator case seeds 0..n-1 (default 6)")
    parser.add_argument("--frames-per-case", type=int, default=25, help="times per case and bit depth")
    parser.add_argument("--size", type=int, default=512, help="[px] frame side (default 512)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    params = QualityParams()
    rng = np.random.default_rng(0)
    sim_total, sim_rejected, bad_total, bad_passed = Counter(), Counter(), Counter(), Counter()
    reasons: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    contrast_frames = 0
    sim_stats = []
    for seed in range(args.seeds):
        for bit_depth in (8, 16):
            sim = ProcedureSimulator(seed, image_size=args.size, bit_depth=bit_depth)
            for t_s in np.linspace(0.0, sim.scenario.duration_s, args.frames_per_case):
                frame = sim.frame_at(float(t_s))
                phases[frame.phase] += 1
                contrast_frames += frame.contrast > 0.0
                variants = {f"mono{bit_depth}": frame.image}
                if bit_depth == 16:  # the same frame as a 10-bit detector's data in a 16-bit container
                    variants["mono10_in_16"] = frame.image >> 6
                for key, image in variants.items():
                    sim_total[key] += 1
                    reason = non_scene_reason(image, params)
                    sim_stats.append(frame_statistics(image, params))
                    if reason is not None:
                        sim_rejected[key] += 1
                        reasons[reason.split(" (")[0]] += 1
                for kind, bad in _bad_frames(rng, frame.image).items():
                    bad_total[kind] += 1
                    bad_passed[kind] += non_scene_reason(bad, params) is None

    timing = {}
    for side in (512, 1024):
        image = ProcedureSimulator(0, image_size=side).frame_at(3.0).image
        samples = []
        for _ in range(200):
            t0 = time.perf_counter()
            non_scene_reason(image, params)
            samples.append(1e3 * (time.perf_counter() - t0))
        timing[f"{side}_mono8_ms"] = {
            q: round(float(np.percentile(samples, p)), 3) for q, p in (("p50", 50), ("p99", 99))
        }

    result = {
        "command": " ".join([".venv/bin/python bench/bench_quality.py", *argv]),
        "simulator": SIM_VERSION,
        "params": params.__dict__,
        "simulator_frames": {
            "total": dict(sim_total),
            "rejected": dict(sim_rejected),
            "rejection_rate": sum(sim_rejected.values()) / max(1, sum(sim_total.values())),
            "phases": dict(phases),
            "with_contrast": int(contrast_frames),
            "reasons": dict(reasons),
            "margins": {  # the simulator frame nearest to each threshold
                "min_level": round(min(x.level for x in sim_stats), 4),
                "min_spread": round(min(x.spread for x in sim_stats), 4),
                "max_clipped_fraction": round(max(x.clipped_fraction for x in sim_stats), 4),
                "min_neighbour_correlation": round(min(x.neighbour_correlation for x in sim_stats), 4),
            },
        },
        "bad_frames": {
            kind: {"total": bad_total[kind], "passed": bad_passed[kind]} for kind in sorted(bad_total)
        },
        "bad_frames_pass_rate": sum(bad_passed.values()) / max(1, sum(bad_total.values())),
        "non_scene_reason_time": timing,
        "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine spreads the p99
    }
    write_results(args.out, result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
