"""The preoperative plan of a simulated case and the view parameters perception gets in the closed loop.

A simulated patient's "preoperative CT" is its own anatomy: for the CT renderer the plan of the CT's
label map (:func:`~tavi_perception.plan.annulus.plan_from_labels`), for the stylised renderer the plane
through the phantom's three cusp nadirs and its STJ centre (on the root axis at the sinus height, where
the phantom's STJ is). The case's CT root frame only moves the origin, so the plan's
directions (all the view correction uses) are the case's. Perception gets what an operator's system has:
that plan and the C-arm's angles, nothing of the simulated truth.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tavi_perception.plan.annulus import AnnulusPlan, plan_fields, plan_from_labels, plan_from_nadirs
from tavi_perception.sim.case import CaseParams
from tavi_perception.sim.ct.simulator import simulation_case
from tavi_perception.sim.phantom import RootGeometry


def case_plan(case: CaseParams, renderer: str) -> AnnulusPlan:
    """The plan of a simulated case of ``renderer`` (module docstring)."""
    if renderer == "ct":
        return plan_from_labels(None)
    root = RootGeometry(case.anatomy)
    nadirs = {c.lower(): root.nadir(c) for c in ("NCC", "LCC", "RCC")}
    return plan_from_nadirs(nadirs, f"case {case.seed}", root.point(root.sinus_height, 0.0, 0.0))


def view_parameters(
    seed: int, renderer: str, view_offset_deg: float | None, plan_dir: Path
) -> dict[str, str | bool | float]:
    """perception_node parameters of case ``seed``'s view: its plan file (written to ``plan_dir``) and the
    C-arm's angles (with ``view_offset_deg`` as ``simulation_case`` places the view)."""
    case = simulation_case(renderer, seed, view_offset_deg=view_offset_deg)
    plan_dir.mkdir(parents=True, exist_ok=True)
    path = plan_dir / f"plan_{renderer}_{seed}.yaml"
    path.write_text(yaml.safe_dump(plan_fields(case_plan(case, renderer)), sort_keys=False))
    view = case.imaging.view
    return {
        "plan_file": str(path.resolve()),
        "carm_angles_given": True,
        "carm_primary_deg": float(view.lao_deg),
        "carm_secondary_deg": float(view.cran_deg),
    }
