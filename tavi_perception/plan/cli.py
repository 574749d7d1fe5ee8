"""``tavi-perception plan``: the preoperative plan from a CT label map or typed-in cusp nadirs.

Annulus centre and normal, the S-curve of coplanar C-arm views, the cusp-overlap and three-cusp views
and the nearest views the C-arm reaches (docs/plan.md). Writes ``<out>/plan.yaml`` (the plan file the
perception node and ``run`` take with ``plan_file`` / ``--plan``) and ``<out>/s_curve.png``; ``--json``
prints the plan as one JSON object on the last line. Without input the CT renderer's CT is planned.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

from tavi_perception.plan.annulus import AnnulusPlan, plan_fields, plan_from_labels, read_points
from tavi_perception.plan.views import CArmRange, PlanViews, View, plan_views


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tavi-perception plan", description=__doc__.split("\n\n")[0])
    source = p.add_mutually_exclusive_group()
    source.add_argument("--labels", type=Path, help="TotalSegmentator label map (NIfTI, .nii/.nii.gz)")
    source.add_argument(
        "--points",
        type=Path,
        help="YAML with the cusp nadirs ncc, lcc, rcc and optionally the STJ centre stj: [x, y, z] in "
        "patient LPS mm each",
    )
    p.add_argument("--out", type=Path, default=Path("runs/plan"), help="output folder (default runs/plan)")
    p.add_argument(
        "--primary-range",
        type=float,
        nargs=2,
        default=(-90.0, 90.0),
        metavar=("RAO", "LAO"),
        help="[deg] primary angles the C-arm reaches, RAO negative (default -90 90)",
    )
    p.add_argument(
        "--secondary-range",
        type=float,
        nargs=2,
        default=(-45.0, 45.0),
        metavar=("CAUDAL", "CRANIAL"),
        help="[deg] secondary angles the C-arm reaches, caudal negative (default -45 45)",
    )
    p.add_argument("--json", action="store_true", help="print the plan as one JSON object on the last line")
    return p


def _view(view: View) -> dict[str, object]:
    return {
        "primary_deg": round(view.primary_deg, 2),
        "secondary_deg": round(view.secondary_deg, 2),
        "within_range": view.within_range,
    }


def plan_document(plan: AnnulusPlan, views: PlanViews) -> dict[str, object]:
    """The plan file's content (also the ``--json`` object)."""
    return {
        "frame": "patient LPS; angles: primary + LAO / - RAO, secondary + cranial / - caudal [deg]",
        **plan_fields(plan),
        "cusp_overlap": views.cusp_overlap.angles(),
        "three_cusp": views.three_cusp.angles(),
        "views": {
            "cusp_overlap": _view(views.cusp_overlap),
            "three_cusp": _view(views.three_cusp),
            "cusp_overlap_recommended": _view(views.cusp_overlap_recommended),
            "three_cusp_recommended": _view(views.three_cusp_recommended),
        },
        "carm_range_deg": {
            "primary": list(views.carm.primary_deg),
            "secondary": list(views.carm.secondary_deg),
        },
        "s_curve": [[round(a, 2), round(b, 2)] for a, b in views.s_curve],
    }


def plot_s_curve(views: PlanViews, path: Path, title: str) -> None:
    """The S-curve with the C-arm's range and the named views."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = np.array(views.s_curve)
    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    (a0, a1), (b0, b1) = views.carm.primary_deg, views.carm.secondary_deg
    ax.add_patch(plt.Rectangle((a0, b0), a1 - a0, b1 - b0, color="0.92", zorder=0, label="C-arm range"))
    ax.plot(curve[:, 0], curve[:, 1], "k-", lw=1.5, label="S-curve (annulus plane edge-on)")
    marks = (
        (views.cusp_overlap, "o", "tab:red", "cusp overlap"),
        (views.three_cusp, "s", "tab:blue", "three cusp"),
    )
    for view, marker, colour, name in marks:
        ax.plot(
            view.primary_deg,
            view.secondary_deg,
            marker,
            color=colour,
            ms=9,
            label=f"{name} ({view.primary_deg:+.1f}, {view.secondary_deg:+.1f})",
        )
    ax.axhline(0.0, color="0.6", lw=0.5)
    ax.axvline(0.0, color="0.6", lw=0.5)
    ax.set_xlabel("primary angle [deg]  (RAO −  /  LAO +)")
    ax.set_ylabel("secondary angle [deg]  (caudal −  /  cranial +)")
    ax.set_ylim(
        max(-90.0, min(b0, float(curve[:, 1].min())) - 5), min(90.0, max(b1, float(curve[:, 1].max())) + 5)
    )
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    carm = CArmRange(tuple(args.primary_range), tuple(args.secondary_range))
    try:
        plan = read_points(args.points) if args.points is not None else plan_from_labels(args.labels)
        views = plan_views(plan, carm)
    except (OSError, ValueError) as err:
        print(f"tavi-perception plan: {err}", file=sys.stderr)
        return 1
    document = plan_document(plan, views)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "plan.yaml").write_text(
        "# tavi-perception plan "
        + " ".join(argv)
        + "\n"
        + yaml.safe_dump(document, sort_keys=False, width=120, default_flow_style=None)
    )
    plot_s_curve(views, args.out / "s_curve.png", f"S-curve of {plan.source}")
    n = plan.normal_lps
    print(
        f"annulus centre {np.round(plan.centre_lps_mm, 1).tolist()} mm LPS, normal {np.round(n, 3).tolist()}"
    )
    for name, view in (("cusp overlap", views.cusp_overlap), ("three cusp", views.three_cusp)):
        reach = "" if view.within_range else " (out of the C-arm's range)"
        print(f"{name}: primary {view.primary_deg:+.1f}, secondary {view.secondary_deg:+.1f} deg{reach}")
    print(f"plan: {args.out / 'plan.yaml'}, S-curve plot: {args.out / 's_curve.png'}")
    if args.json:
        print(json.dumps(document))
    return 0
