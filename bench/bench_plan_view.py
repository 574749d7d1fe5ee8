"""The plan against the simulators and the view correction on exact keypoints (no model, no ROS).

1. S-curve of the plan (the CT renderer's CT from its label map alone, and stylised cases from their
   three cusp nadirs) against the simulator's edge-on views: for each primary angle the secondary angle
   at which the simulator's projector shows the annulus ring thinnest (0.02° search).
2. Obliquity from the plan and the C-arm angles against the simulator's (root axis, central beam).
3. Depth, asymmetry and tilt of a perfect detector (the simulator's exact projected keypoints) in views
   off the S-curve, raw and corrected, against the coplanar truth (``simulation_case(view_offset_deg=)``),
   the valve partly deployed (20 mm retraction) at 2-6 mm true depth.

    nice .venv/bin/python bench/bench_plan_view.py
    # -> bench/results/plan_view.json, docs/plan_vs_simulator.png
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

import numpy as np

from tavi_perception.keypoints import Kp
from tavi_perception.plan.annulus import plan_from_labels
from tavi_perception.plan.obliquity import ViewCorrection, ViewState, obliquity_deg
from tavi_perception.plan.simulated import case_plan
from tavi_perception.plan.views import s_curve
from tavi_perception.sim.carm import CArmView, Projector
from tavi_perception.sim.ct.simulator import create_simulator, simulation_case
from tavi_perception.sim.ct.volume import LABEL_FILE, data_path
from tavi_perception.sim.delivery import DeliveryState
from tavi_perception.sim.phantom import RootGeometry
from tavi_perception.sim.simulator import ProcedureSimulator, true_geometry

PRIMARY_DEG = np.arange(-60.0, 61.0, 10.0)
OFFSETS_DEG = (-25.0, -20.0, -15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 25.0)


def edge_on_secondary_deg(view: CArmView, ring: np.ndarray, primary_deg: float) -> float:
    """Secondary angle [deg] at which ``ring`` projects thinnest (isocentre on the ring's centre)."""
    iso = tuple(float(v) for v in ring.mean(axis=0))

    def width(b: float) -> float:
        px = Projector(
            CArmView(primary_deg, float(b), view.sid_mm, view.sod_mm, view.detector_fov_mm, iso), 512
        )
        pts = px.project(ring)
        return float(np.linalg.svd(pts - pts.mean(axis=0), compute_uv=False)[-1])

    coarse = np.arange(-70.0, 70.0, 0.5)
    best = float(coarse[int(np.argmin([width(b) for b in coarse]))])
    fine = np.arange(best - 0.5, best + 0.5, 0.02)
    return float(fine[int(np.argmin([width(b) for b in fine]))])


def ring_of(case) -> np.ndarray:
    root = RootGeometry(case.anatomy)
    return np.array(
        [root.point(0.0, root.radius, a) for a in np.linspace(0, 2 * math.pi, 36, endpoint=False)]
    )


def s_curve_check(renderer: str, seeds: list[int]) -> dict[str, object]:
    errors, curves = [], []
    for seed in seeds:
        case = simulation_case(renderer, seed)
        plan = plan_from_labels(data_path(LABEL_FILE)) if renderer == "ct" else case_plan(case, renderer)
        ring = ring_of(case)
        true_b = [edge_on_secondary_deg(case.imaging.view, ring, a) for a in PRIMARY_DEG]
        planned_b = s_curve(plan.normal_lps, PRIMARY_DEG)
        errors += list(np.abs(planned_b - np.array(true_b)))
        curves.append({"seed": seed, "planned": planned_b.tolist(), "simulator": true_b})
        if renderer == "ct":
            break  # one anatomy
    return {
        "abs_error_deg_mean": float(np.mean(errors)),
        "abs_error_deg_max": float(np.max(errors)),
        "curves": curves,
    }


def correction_check(renderer: str, seeds: list[int]) -> dict[str, object]:
    out: dict[str, object] = {}
    ct_plan = plan_from_labels(data_path(LABEL_FILE)) if renderer == "ct" else None
    for offset in OFFSETS_DEG:
        rows, unusable = [], 0
        for seed in seeds:
            case = simulation_case(renderer, seed, view_offset_deg=offset)
            sim = ProcedureSimulator(case) if renderer == "stylised" else create_simulator("ct", case)
            plan = ct_plan if ct_plan is not None else case_plan(case, renderer)
            view = case.imaging.view
            beam, _, _ = view.axes()
            true_obl = math.degrees(math.asin(abs(float(beam @ np.asarray(case.anatomy.root_axis_lps)))))
            planned_obl = obliquity_deg(plan.normal_lps, view.lao_deg, view.cran_deg)
            for tip_mm in (2.0, 4.0, 6.0):
                state = DeliveryState(tip_mm, 20.0)
                kp, truth = sim.truth_at(0.0, state)
                est = true_geometry(kp, sim.mm_per_px, state, case, truth.tip_depth_3d_mm)
                raw = (est.stent_mean_depth_mm, est.fe1_depth_mm - est.fe2_depth_mm, est.delivery_tilt_deg)
                est.depth_source, est.depth_mm, est.target_depth_mm = 2, est.stent_mean_depth_mm, 4.0
                span = float(np.hypot(*(kp[Kp.FE2] - kp[Kp.FE1]))) * sim.mm_per_px
                ViewCorrection(plan, 90.0, 90.0).apply(est, view.lao_deg, view.cran_deg, span)
                if est.view_state != ViewState.CORRECTED:  # a view the correction refuses
                    unusable += 1
                    continue
                rows.append(
                    [
                        planned_obl - true_obl,
                        true_obl,
                        raw[0] - truth.stent_mean_depth_mm,
                        est.depth_mm - truth.stent_mean_depth_mm,
                        raw[1] - (truth.fe1_depth_mm - truth.fe2_depth_mm),
                        (est.fe1_depth_mm - est.fe2_depth_mm) - (truth.fe1_depth_mm - truth.fe2_depth_mm),
                        raw[2] - truth.delivery_tilt_deg,
                        est.delivery_tilt_deg - truth.delivery_tilt_deg,
                    ]
                )
        r = np.abs(np.array(rows))
        out[f"{offset:+.0f}"] = {
            "cases": len(seeds),
            "samples_refused": unusable,  # (case, depth) samples whose view the correction refuses
            "obliquity_deg_mean": float(np.mean(np.array(rows)[:, 1])),
            "obliquity_error_deg_max": float(r[:, 0].max()),
            "depth_error_mm_mean_raw": float(r[:, 2].mean()),
            "depth_error_mm_mean_corrected": float(r[:, 3].mean()),
            "depth_error_mm_max_corrected": float(r[:, 3].max()),
            "asymmetry_error_mm_mean_raw": float(r[:, 4].mean()),
            "asymmetry_error_mm_mean_corrected": float(r[:, 5].mean()),
            "tilt_error_deg_mean_raw": float(r[:, 6].mean()),
            "tilt_error_deg_mean_corrected": float(r[:, 7].mean()),
        }
    return out


def plot(result: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.2))
    for renderer, style in (("ct", "k"), ("stylised", "tab:blue")):
        for i, curve in enumerate(result[renderer]["s_curve"]["curves"][:3]):
            label = f"{renderer} plan" if i == 0 else None
            axes[0].plot(PRIMARY_DEG, curve["planned"], "-", color=style, lw=1, label=label)
            axes[0].plot(
                PRIMARY_DEG,
                curve["simulator"],
                "o",
                color=style,
                ms=4,
                mfc="none",
                label=f"{renderer} simulator edge-on" if i == 0 else None,
            )
    axes[0].set_xlabel("primary angle [deg] (RAO - / LAO +)")
    axes[0].set_ylabel("secondary angle [deg] (caudal - / cranial +)")
    axes[0].set_title("S-curve: plan (lines) vs simulator's thinnest ring (circles)", fontsize=9)
    axes[0].legend(fontsize=8)
    for renderer, style in (("ct", "k"), ("stylised", "tab:blue")):
        rows = result[renderer]["correction"]
        offsets = [float(k) for k in rows]
        for which, line in (("raw", "--"), ("corrected", "-")):
            errors = [rows[k][f"depth_error_mm_mean_{which}"] for k in rows]
            axes[1].plot(offsets, errors, line, color=style, label=f"{renderer}: {which}")
    axes[1].axhline(0.5, color="tab:red", lw=0.8)
    axes[1].set_xlabel("view offset from the S-curve [deg] (secondary angle)")
    axes[1].set_ylabel("mean |depth error| vs coplanar truth [mm]")
    axes[1].set_title("perfect detector, valve partly deployed, 2-6 mm deep", fontsize=9)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=20, help="stylised case seeds 0..N-1 (default 20)")
    p.add_argument(
        "--ct-cases", type=int, default=4, help="CT case seeds (default 4; ~4 s per case and view)"
    )
    p.add_argument("--out", type=Path, default=Path("bench/results/plan_view.json"))
    p.add_argument("--figure", type=Path, default=Path("docs/plan_vs_simulator.png"))
    args = p.parse_args()
    result: dict[str, object] = {
        "command": "nice .venv/bin/python bench/bench_plan_view.py " + shlex.join(sys.argv[1:])
    }
    for renderer, cases in (("stylised", args.cases), ("ct", args.ct_cases)):
        seeds = list(range(cases))
        result[renderer] = {
            "cases": cases,
            "s_curve": s_curve_check(renderer, seeds[:5]),
            "correction": correction_check(renderer, seeds),
        }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    plot(result, args.figure)
    for renderer in ("stylised", "ct"):
        sc = result[renderer]["s_curve"]
        print(
            f"{renderer}: S-curve error mean {sc['abs_error_deg_mean']:.3f}, "
            f"max {sc['abs_error_deg_max']:.3f} deg"
        )
        for k, row in result[renderer]["correction"].items():
            print(f"  offset {k}: " + ", ".join(f"{name} {value:.2f}" for name, value in row.items()))


if __name__ == "__main__":
    main()
