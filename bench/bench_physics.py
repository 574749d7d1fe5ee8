"""Delivery-system physics speed (real-time factor on one core) and the handle-vs-tip plot.

A scripted procedure (``PROGRAM``: advance, stop, a reversal, a slow advance, the capsule retraction to
full release) drives :class:`tavi_perception.physics.DeliveryPhysics` at 15 frames/s for several cases
(each with its own drawn parameters); the real-time factor is simulated time / wall time of ``step``
alone (no rendering), and the same per CPU second of this process (``time.process_time``), which does
not depend on what else the machine runs. ``--plot`` draws the handle and the tip of one case over the
script: the tip's lag and stick-slip, the lost reversal in the dead band, the capsule's drag and the
release jump.

Writes bench/results/physics.json. Run: .venv/bin/python bench/bench_physics.py [--cases N]
[--plot docs/physics_handle_vs_tip.png]
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from pathlib import Path

import matplotlib
import mujoco
import numpy as np
from benchlib import RESULTS_DIR, bench_parser, write_results

from tavi_perception.physics import DeliveryPhysics, sample_physics
from tavi_perception.physics.model import SEGMENTS, TIMESTEP_S
from tavi_perception.sim import ProcedureSimulator
from tavi_perception.sim.delivery import AppliedSpeeds, DeliveryState

matplotlib.use("Agg")
import matplotlib.pyplot as plt

RESULTS = RESULTS_DIR / "physics.json"
FPS = 15.0
START_TIP_MM = -15.0
GOAL_REAL_TIME_FACTOR = 10.0
PROGRAM: tuple[tuple[str, float, AppliedSpeeds], ...] = (  # (what, seconds, speeds)
    ("advance 2 mm/s", 5.0, AppliedSpeeds(advance_mm_s=2.0)),
    ("stop", 2.0, AppliedSpeeds()),
    ("withdraw 0.5 mm/s", 2.0, AppliedSpeeds(advance_mm_s=-0.5)),
    ("stop", 1.0, AppliedSpeeds()),
    ("advance 0.5 mm/s", 6.0, AppliedSpeeds(advance_mm_s=0.5)),
    ("stop", 1.0, AppliedSpeeds()),
    ("retract capsule 2 mm/s", 26.0, AppliedSpeeds(retraction_mm_s=2.0)),
)


def run_program(physics: DeliveryPhysics) -> tuple[dict[str, np.ndarray], float, float]:
    """The script at ``FPS``: per-frame series, and the wall and CPU time spent in ``step`` [s]."""
    rows, wall_s, cpu_s = [], 0.0, 0.0
    for _, seconds, speeds in PROGRAM:
        for _ in range(round(seconds * FPS)):
            start, start_cpu = time.perf_counter(), time.process_time()
            state = physics.step(speeds, 1.0 / FPS)
            wall_s += time.perf_counter() - start
            cpu_s += time.process_time() - start_cpu
            h = physics.handle
            rows.append((physics.t_s, h.advance_mm, state.tip_sigma_mm, h.retraction_mm, state.retraction_mm))
    a = np.asarray(rows)
    keys = ("t_s", "handle_mm", "tip_mm", "knob_mm", "capsule_mm")
    return {k: a[:, i] for i, k in enumerate(keys)}, wall_s, cpu_s


def case_physics(seed: int, **overrides: float) -> DeliveryPhysics:
    sim = ProcedureSimulator(seed, image_size=128)
    params = dataclasses.replace(sample_physics(seed), **overrides)
    return DeliveryPhysics(
        params,
        sim.scene.delivery.rail,
        sim.scene.motion,
        DeliveryState(START_TIP_MM),
        sim.case.devices.frame_height_mm,
        sim.limits,
    )


def plot(series: dict[str, np.ndarray], physics: DeliveryPhysics, path: Path) -> None:
    """Handle and tip over the script; the capsule retraction and the valve's move during the release."""
    p, t = physics.params, series["t_s"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7.5), sharex=True)
    ax1.plot(t, series["handle_mm"], label="handle (advance servo)", color="tab:blue")
    ax1.plot(t, series["tip_mm"], label="tip CT (physics)", color="tab:red")
    ax1.set_ylabel("position along the path [mm]")
    ax1.legend(loc="lower right")
    ax1.set_title(
        f"MuJoCo delivery system: friction {p.shaft_friction_n:.1f} N "
        f"(static x{p.static_friction_ratio:.2f}), "
        f"stiffness {p.axial_stiffness_n_mm:.1f} N/mm, backlash {p.backlash_mm:.1f} mm, "
        f"release jump {p.release_jump_mm:+.1f} mm",
        fontsize=9,
    )
    edges = np.cumsum([0.0] + [s for _, s, _ in PROGRAM])
    for (what, _, _), t0 in zip(PROGRAM, edges, strict=False):
        ax1.axvline(t0, color="0.85", lw=0.8)
        ax1.text(t0 + 0.2, ax1.get_ylim()[0] + 0.3, what, fontsize=7, rotation=90, va="bottom")
    ax2.plot(t, series["knob_mm"], label="retraction knob", color="tab:blue", ls="--")
    ax2.plot(t, series["capsule_mm"], label="capsule retraction (physics)", color="tab:green")
    ax2.set_ylabel("retraction [mm]")
    twin = ax2.twinx()
    twin.plot(t, series["tip_mm"] - series["handle_mm"], color="tab:red", label="tip - handle")
    twin.set_ylabel("tip - handle [mm]", color="tab:red")
    engage_mm = p.engage_fraction * physics.frame_height_mm
    engaged = np.flatnonzero(series["capsule_mm"] >= engage_mm)
    if engaged.size:
        ax2.axvline(t[engaged[0]], color="tab:purple", lw=1.0)
        ax2.text(t[engaged[0]] + 0.3, 1.0, "frame engages the annulus", color="tab:purple", fontsize=8)
    ax2.set_xlabel("time [s]")
    ax2.legend(loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, RESULTS)
    parser.add_argument("--cases", type=int, default=6, help="cases (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="first case seed (default 0)")
    parser.add_argument("--plot", type=Path, default=None, help="write the handle-vs-tip plot here")
    parser.add_argument("--plot-seed", type=int, default=3, help="case of the plot (default 3)")
    args = parser.parse_args(argv)
    factors, simulated_s, wall_s, cpu_s = [], 0.0, 0.0, 0.0
    for seed in range(args.seed, args.seed + args.cases):
        physics = case_physics(seed)
        series, wall, cpu = run_program(physics)
        factors.append(float(series["t_s"][-1] - series["t_s"][0] + 1.0 / FPS) / wall)
        simulated_s += float(series["t_s"][-1] - series["t_s"][0] + 1.0 / FPS)
        wall_s += wall
        cpu_s += cpu
    results = {
        "what": "DeliveryPhysics.step at 15 frames/s over a scripted procedure, one process, no rendering",
        "goal_real_time_factor": GOAL_REAL_TIME_FACTOR,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "mujoco": mujoco.__version__,
        "timestep_s": TIMESTEP_S,
        "segments": SEGMENTS,
        "cases": args.cases,
        "simulated_s": round(simulated_s, 2),
        "wall_s": round(wall_s, 3),
        "real_time_factor": round(simulated_s / wall_s, 1),
        "cpu_s": round(cpu_s, 3),
        "real_time_factor_per_cpu_second": round(simulated_s / cpu_s, 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "real_time_factor_per_case": [round(f, 1) for f in factors],
    }
    write_results(args.out, results)
    print(
        f"physics: {results['real_time_factor']}x real time "
        f"({simulated_s:.0f} s simulated in {wall_s:.2f} s, {cpu_s:.2f} s of CPU: "
        f"{results['real_time_factor_per_cpu_second']}x per CPU second; "
        f"per case {min(factors):.0f}-{max(factors):.0f}x)"
    )
    if args.plot is not None:
        physics = case_physics(args.plot_seed)
        series, _, _ = run_program(physics)
        plot(series, physics, args.plot)
        print(f"wrote {args.plot}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
