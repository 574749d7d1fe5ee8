"""The view's obliquity to the annulus plane, the bias it gives image depths, and its correction (no ROS).

Depth, asymmetry and tilt are measured in the image against the projected NCC-LCC hinge line (the
annulus frame of :mod:`tavi_perception.geometry.frames`). In a coplanar view (beam in the annulus plane)
the plane projects to a line and image depth equals the true depth below the plane. Off the S-curve by
the obliquity ``θ`` (the angle between the plane and the beam) three things change:

- the hinge chord lies off the annulus centre (for cusps 120° apart its midpoint is ~R/2 from the
  centre, towards the RCC's opposite side), and that offset now shows in depth: a device on the root
  axis in the annulus plane reads ``depth_offset_mm`` (≈ R/2 · sin θ when the beam tilts across the
  chord: ~1.7 mm at 15° for a 13-mm annulus radius);
- true depth is foreshortened by ``depth_gain`` (≈ cos θ);
- the projected hinge line is no longer parallel to the major axis of a ring coaxial with the root:
  a coaxial valve reads a tilt (``stent_tilt_bias_deg``; the delivery axis of a coaxial system reads
  ``tilt_bias_deg``) and an FE1-FE2 depth difference (:meth:`ViewEffect.asymmetry_bias_mm`, signed FE1
  minus FE2, proportional to the frame edge's projected width). When the NCC-LCC chord is much
  foreshortened (the beam nearly along it) a few degrees of obliquity turn the hinge line a lot.

:func:`view_effect` computes these from the plan (normal, nadirs) and the C-arm angles by measuring a
virtual coaxial valve with the perception's own geometry functions, in a parallel projection (the root
is a few centimetres across at 60-95 cm from the source; the perspective's extra angle, the root's
offset from the central beam over the source distance, is left out: about 1° per 15 mm). The
correction inverts that model for a device on the root axis: ``true = (image - offset) / gain``; what it
cannot know is the device's own offset from the root axis along the beam's in-plane direction, which
adds its ``sin θ`` share to the residual. Beyond ``limit_deg`` the guidance is made invalid.

The plan also says where the annulus line must lie in the image of this view (``annulus_angle_deg``,
the patient lying as in the CT) and the projected shape of the root (``hinges_image_mm``,
``stj_image_mm``): the annulus block registers that shape on each contrast frame's AA1, AA2 and STJ
(:class:`~tavi_perception.geometry.annulus.PlannedAnnulus`) instead of reading the line off two hinge
points, one of which an oblique view hides inside the contrast. A measured line more than
``annulus_tolerance_deg`` from the plan's means a detector error (seen in views far from the training
views: 10-25° in steep cranial views) or a patient or C-arm that is not where the plan assumes; the
annulus block does not take such a frame unless two of its three landmarks lie within
``landmark_tolerance_mm`` of the registered shape (one misplaced hinge point turns the line, not the
registration's median), and :meth:`ViewCorrection.apply` makes an estimate carrying
such a line invalid (``INCONSISTENT``): for the pipeline's estimates, whose line is the registered plan,
a second line of defence; for estimates made elsewhere, the check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from tavi_perception.core.carm import view_axes
from tavi_perception.geometry.annulus import PlannedAnnulus
from tavi_perception.geometry.deviations import axis_tilt_deg, signed_tilt_deg
from tavi_perception.geometry.frames import annulus_frame, wrap_deg
from tavi_perception.guidance import DepthSource, GuidanceEstimate
from tavi_perception.plan.annulus import AnnulusPlan

STJ_PROBE_MM = 20.0  # [mm] a point this far up the root axis gives the annulus frame its aortic side
MIN_DEPTH_GAIN = 0.7  # [1] below this the view foreshortens depth too much for the correction
MAX_TILT_BIAS_DEG = 30.0  # [deg] beyond this the view turns the hinge line too far (side labels may swap)


class ViewState(IntEnum):
    """Values equal ``tavi_msgs/Guidance`` ``VIEW_*``."""

    UNKNOWN = 0  # no plan or no C-arm angles: image values as measured
    CORRECTED = 1  # depths, asymmetry and tilts corrected for the view's obliquity
    TOO_OBLIQUE = 2  # obliquity beyond the limit (or the hinge line not measurable): guidance invalid
    INCONSISTENT = 3  # the measured annulus line is not where the plan puts it in this view: invalid


@dataclass(frozen=True)
class ViewEffect:
    """What a view does to image measures of a device coaxial with the root (module docstring)."""

    obliquity_deg: float  # [deg] angle between the annulus plane and the beam, 0..90
    depth_gain: float  # [1] image depth per millimetre of true depth
    depth_offset_mm: float  # [mm] image depth of the root axis's crossing of the annulus plane
    tilt_bias_deg: float  # [deg] delivery-axis tilt a coaxial device reads (image rotation sense)
    stent_tilt_bias_deg: float  # [deg] FE1->FE2 tilt a coaxial valve reads (+ = FE2 deeper)
    annulus_angle_deg: (
        float  # [deg] image angle of the projected AA1->AA2 line (as Guidance.annulus_angle_deg)
    )
    hinges_image_mm: np.ndarray  # (2, 2) projected AA1- and AA2-side nadirs, image mm (AA1: smaller x)
    stj_image_mm: np.ndarray | None  # (2,) projected STJ centre, image mm (None: not in the plan)

    def depth_bias_mm(self, true_depth_mm: float) -> float:
        """Image depth minus true depth of a point on the root axis ``true_depth_mm`` below the plane."""
        return (self.depth_gain - 1.0) * true_depth_mm + self.depth_offset_mm

    def corrected_depth_mm(self, image_depth_mm: float) -> float:
        """True depth of a point on the root axis that reads ``image_depth_mm`` in this view."""
        return (image_depth_mm - self.depth_offset_mm) / self.depth_gain

    def asymmetry_bias_mm(self, fe_span_mm: float) -> float:
        """FE1 minus FE2 image depth of a coaxial valve whose frame edge spans ``fe_span_mm`` in the image.

        It scales with the edge's projected width (crimped in the capsule, expanded after release), so
        it is taken from the measured FE1-FE2 distance, not from the plan.
        """
        return -fe_span_mm * math.sin(math.radians(self.stent_tilt_bias_deg))


def obliquity_deg(normal_lps: np.ndarray, primary_deg: float, secondary_deg: float) -> float:
    """Angle [deg] between the plane with ``normal_lps`` and the beam of the view (0 = coplanar)."""
    beam, _, _ = view_axes(primary_deg, secondary_deg)
    n = np.asarray(normal_lps, dtype=float)
    return math.degrees(math.asin(min(1.0, abs(float(n @ beam)) / float(np.linalg.norm(n)))))


def view_effect(plan: AnnulusPlan, primary_deg: float, secondary_deg: float) -> ViewEffect:
    """The effect of the view (primary, secondary) [deg] on image measures (module docstring).

    Raises ``ValueError`` when the view shows no measurable hinge line (the NCC-LCC chord along the
    beam), foreshortens depth below :data:`MIN_DEPTH_GAIN` or turns the hinge line against a coaxial
    device by more than :data:`MAX_TILT_BIAS_DEG` (a much foreshortened chord: the linear correction
    and the FE1/FE2 side labels are not to be trusted there; seen only in views beyond 50° cranial).
    """
    beam, x_img, y_img = view_axes(primary_deg, secondary_deg)

    def image(p: np.ndarray) -> np.ndarray:  # parallel projection, millimetres in the image plane
        return np.array([float(p @ x_img), float(p @ y_img)])

    n, c = plan.normal_lps, plan.centre_lps_mm
    aa = sorted((image(plan.nadirs_lps_mm["ncc"]), image(plan.nadirs_lps_mm["lcc"])), key=lambda p: p[0])
    frame = annulus_frame(aa[0], aa[1], image(c + STJ_PROBE_MM * n))
    offset = frame.to_annulus_mm(image(c), 1.0)[1]
    gain = frame.to_annulus_mm(image(c - n), 1.0)[1] - offset
    if gain < MIN_DEPTH_GAIN:
        raise ValueError(f"the view foreshortens depth too much (depth gain {gain:.2f})")
    ring_axis = np.cross(n, beam)  # the major axis of a coaxial ring's projection
    if float(np.linalg.norm(ring_axis)) < 1e-9:
        raise ValueError("the beam runs along the root axis")
    ring_axis /= np.linalg.norm(ring_axis)
    fe = sorted(
        (image(c - plan.radius_mm * ring_axis), image(c + plan.radius_mm * ring_axis)), key=lambda p: p[0]
    )
    tilt_bias_deg = axis_tilt_deg(frame, image(-n))
    if abs(tilt_bias_deg) > MAX_TILT_BIAS_DEG:
        raise ValueError(f"the view turns the hinge line by {tilt_bias_deg:.0f} deg against the root axis")
    return ViewEffect(
        obliquity_deg=obliquity_deg(n, primary_deg, secondary_deg),
        depth_gain=gain,
        depth_offset_mm=offset,
        tilt_bias_deg=tilt_bias_deg,
        stent_tilt_bias_deg=signed_tilt_deg(frame, fe[0], fe[1]),
        annulus_angle_deg=frame.angle_deg,
        hinges_image_mm=np.array(aa),
        stj_image_mm=None if plan.stj_centre_lps_mm is None else image(plan.stj_centre_lps_mm),
    )


@dataclass
class ViewCorrection:
    """Corrects each guidance for the current view of the plan (module docstring); ``limit_deg`` [deg]."""

    plan: AnnulusPlan | None
    limit_deg: float = 20.0
    annulus_tolerance_deg: float = 8.0  # [deg] measured vs planned annulus line in the image
    landmark_tolerance_mm: float = 2.0  # [mm] a landmark vs its registered place (PlannedAnnulus.problem)
    # the last view's effect: the pipeline asks twice per frame and the angles rarely change
    _last: tuple[float, float, ViewEffect | str] | None = field(default=None, init=False, repr=False)

    def effect(self, primary_deg: float, secondary_deg: float) -> ViewEffect | str:
        """The view's effect, or why there is none to apply."""
        last = self._last
        if last is not None and (last[0], last[1]) == (primary_deg, secondary_deg):
            return last[2]
        effect = self._effect(primary_deg, secondary_deg)
        self._last = (primary_deg, secondary_deg, effect)
        return effect

    def _effect(self, primary_deg: float, secondary_deg: float) -> ViewEffect | str:
        if self.plan is None:
            return "no preoperative plan"
        if not (math.isfinite(primary_deg) and math.isfinite(secondary_deg)):
            return "C-arm angles unknown"
        try:
            return view_effect(self.plan, primary_deg, secondary_deg)
        except ValueError as err:
            return str(err)

    def planned_annulus(self, primary_deg: float, secondary_deg: float) -> PlannedAnnulus | None:
        """The plan in this view, for the annulus block to check contrast frames against and register
        them from; None without a plan, angles or a usable view (the guidance is then UNKNOWN or invalid
        anyway)."""
        effect = self.effect(primary_deg, secondary_deg)
        if isinstance(effect, str) or effect.obliquity_deg > self.limit_deg:
            return None
        return PlannedAnnulus(
            effect.annulus_angle_deg,
            self.annulus_tolerance_deg,
            effect.hinges_image_mm,
            effect.stj_image_mm,
            self.landmark_tolerance_mm,
        )

    def apply(
        self,
        estimate: GuidanceEstimate,
        primary_deg: float,
        secondary_deg: float,
        fe_span_mm: float = math.nan,
    ) -> None:
        """Fill the view fields of ``estimate`` and correct its depths, asymmetry and tilts in place.

        ``fe_span_mm`` [mm] is the measured FE1-FE2 distance in the image (NaN when not measured).
        """
        effect = self.effect(primary_deg, secondary_deg)
        if isinstance(effect, str):
            estimate.view_state = ViewState.UNKNOWN
            if self.plan is not None and math.isfinite(primary_deg) and math.isfinite(secondary_deg):
                estimate.view_state = ViewState.TOO_OBLIQUE
                _invalidate(estimate, f"view not usable: {effect}")
            return
        estimate.view_obliquity_deg = effect.obliquity_deg
        estimate.view_tilt_bias_deg = effect.tilt_bias_deg
        estimate.view_asymmetry_bias_mm = effect.asymmetry_bias_mm(fe_span_mm)
        if effect.obliquity_deg > self.limit_deg:
            estimate.view_state = ViewState.TOO_OBLIQUE
            _invalidate(
                estimate,
                f"view {effect.obliquity_deg:.1f} deg off the annulus plane (limit {self.limit_deg:g} deg)",
            )
            return
        planned = self.planned_annulus(primary_deg, secondary_deg)  # a usable view within the limit
        off_plan = planned.problem(estimate.annulus_angle_deg)
        if off_plan is not None:
            estimate.view_state = ViewState.INCONSISTENT
            _invalidate(estimate, off_plan)
            return
        estimate.view_state = ViewState.CORRECTED
        if math.isfinite(estimate.depth_mm):
            true_depth = effect.corrected_depth_mm(estimate.depth_mm)
            estimate.view_depth_bias_mm = estimate.depth_mm - true_depth
        _correct(estimate, effect, estimate.view_asymmetry_bias_mm)


def _invalidate(estimate: GuidanceEstimate, reason: str) -> None:
    estimate.valid = False
    estimate.invalid_reason = (
        reason if not estimate.invalid_reason else f"{reason}; {estimate.invalid_reason}"
    )


def _correct(est: GuidanceEstimate, effect: ViewEffect, asymmetry_bias_mm: float) -> None:
    """Every depth, the asymmetry and the tilts of ``est`` as a device on the root axis would have them."""
    fix = effect.corrected_depth_mm
    half = 0.5 * asymmetry_bias_mm
    est.tip_depth_mm = fix(est.tip_depth_mm)
    est.fe1_depth_mm = fix(est.fe1_depth_mm - half)
    est.fe2_depth_mm = fix(est.fe2_depth_mm + half)
    est.stent_mean_depth_mm = 0.5 * (est.fe1_depth_mm + est.fe2_depth_mm)
    est.stent_asymmetry_mm = abs(est.fe1_depth_mm - est.fe2_depth_mm)
    est.stent_tilt_deg = wrap_deg(est.stent_tilt_deg - effect.stent_tilt_bias_deg, 90.0)
    est.delivery_tilt_deg = wrap_deg(est.delivery_tilt_deg - effect.tilt_bias_deg, 180.0)
    if est.depth_source == DepthSource.STENT:
        est.depth_mm = est.stent_mean_depth_mm
    elif est.depth_source == DepthSource.TIP:
        est.depth_mm = est.tip_depth_mm
    est.depth_error_mm = est.depth_mm - est.target_depth_mm
    est.depth_std_mm = est.depth_std_mm / effect.depth_gain
