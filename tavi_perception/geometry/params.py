"""Geometry and guidance parameters, shared by the estimator's blocks (no ROS)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GeometryParams:
    """Geometry and guidance parameters (millimetres at the isocentre, seconds, degrees)."""

    target_depth_mm: float = 4.0  # [mm] target implantation depth (self-expanding valves: ~3-5 mm)
    depth_tolerance_mm: float = 1.0  # [mm] half-width of the acceptable band around the target
    valve_frame_height_mm: float = 18.0  # [mm] valve frame height (SAPIEN 3 23 mm: 18 mm)
    cp_cd_closed_mm: float = 0.0  # [mm] projected CP-CD distance with the capsule closed; 0 = learn it online
    # [mm] true (3D) CP-CD length of the delivery system with the capsule closed, from its specification;
    # with it the retraction is (1 - d / d_closed) x this length, free of the view's foreshortening
    # (the projected difference d_closed - d is shortened by the cosine of the catheter's out-of-plane
    # angle, so a full deployment would read a few percent short). 0 = unknown: projected difference.
    cp_cd_length_mm: float = 0.0
    # frames in the running medians: the latest closed-capsule CP-CD distances (the learned reference) and
    # the minimum count before the CT-CP distance is used
    reference_learn_frames: int = 10
    # [frames] the newest closed-capsule frames left out of the CP-CD reference: the capsule retracts a
    # little before the frame edges are detected (30 frames = 2 s at 15 fps, ~1-2 mm at 1-2 mm/s)
    reference_lag_frames: int = 30
    # [mm] retraction from which deployment counts as started (latched). Above the ~1 mm by which the
    # projected CP-CD distance wanders with foreshortening while the closed capsule moves in.
    deployment_start_mm: float = 3.0
    # [s] a latched deployment whose stent block stays invalid this long is released (depth source back to
    # the tip, closed-capsule reference learning resumed): a started deployment keeps its expanded frame
    # edges in view, so edges gone for good mean the latch was false (a drifting reference and phantom
    # edges together); the tip depth stays a valid depth of the inflow edge either way
    deployment_release_s: float = 3.0
    retraction_margin_mm: float = 3.0  # [mm] retraction tolerated below 0 and above the frame height
    # [mm] sanity range of the *projected* AA1-AA2 distance. The hinge points are two cusp nadirs ~120°
    # apart on the annulus (chord ~0.87 x the 18-30 mm diameter), foreshortened by the view: the
    # simulator's test-split views give 8-24 mm, so the range is wider than the clinical diameters.
    annulus_diameter_min_mm: float = 6.0
    annulus_diameter_max_mm: float = 40.0
    # [mm] a contrast annulus this far from the pigtail-carried one is inconsistent (the binding keeps
    # averaging the contrast, so a real change is accepted within ~2 binding_average_s)
    annulus_consistency_mm: float = 3.0
    # [mm] stent mean depth this far from the tip depth is inconsistent: the frame's inflow edge sits at
    # CT (delivery-system contract, docs/ARCHITECTURE.md)
    stent_tip_consistency_mm: float = 5.0
    # [mm] CP, the tip CT and the centre of the frame's inflow edge (FE1-FE2 midpoint) are fixed to each
    # other on the inner shaft: CT, and the frame-edge midpoint, this much farther from or nearer to CP
    # than the CT-CP distance learned over the last anchor_window_frames frames with both measured
    # (their median, once reference_learn_frames are in) is a misdetection. The projected distance
    # changes with foreshortening by ~1 mm while the catheter moves; the running median forgets early
    # misdetections.
    anchor_consistency_mm: float = 4.0
    anchor_window_frames: int = 300  # [frames] window of the CT-CP running median (20 s at 15 fps)
    # [mm] before deployment has started, frame edges need at least this capsule retraction (they show
    # once the capsule uncovers the frame; 1 mm is above the projected CP-CD noise)
    stent_min_retraction_mm: float = 1.0
    depth_limit_mm: float = 40.0  # [mm] |depth| beyond this is inconsistent (tip and frame edges)
    lateral_limit_mm: float = 30.0  # [mm] |tip lateral offset| beyond this is inconsistent
    pigtail_missing_max_s: float = 0.5  # [s] PT unusable this long drops the binding (annulus LOST)
    # [s] longest gap without frames (fluoroscopy pedal released) over which a pigtail-bound annulus is
    # held for re-attachment; a longer one drops it (the view, table or patient has likely changed)
    annulus_hold_max_s: float = 600.0
    # [mm] after a gap, PT must come back this close to a position it took in the last pt_history_s
    # before the gap for the held annulus to be re-attached; farther: annulus LOST until the next contrast
    reattach_tolerance_mm: float = 3.0
    # [s] after frames resume, PT must be usable within this time, else the held annulus is LOST
    reattach_window_s: float = 2.0
    # [s] PT positions kept for the re-attachment check: at least a breath, so any cardiac and
    # respiratory phase PT comes back in has been seen
    pt_history_s: float = 10.0
    binding_average_s: float = 0.5  # [s] time constant of the binding's average over contrast frames
    max_predicted_s: float = 0.2  # [s] longest coasting of a keypoint still used for a valid block
    min_track_hits: int = 3  # accepted detections a track needs before a valid block uses it
    max_keypoint_std_mm: float = 2.0  # [mm] largest 1-sigma keypoint uncertainty used for a valid block
    max_staleness_s: float = 0.5  # [s] largest age of the tracked keypoints at the estimate time

    def __post_init__(self) -> None:
        checks = {
            "depth_tolerance_mm must be >= 0": self.depth_tolerance_mm >= 0,
            "valve_frame_height_mm must be > 0": self.valve_frame_height_mm > 0,
            "cp_cd_closed_mm must be >= 0 (0 = learn)": self.cp_cd_closed_mm >= 0,
            "cp_cd_length_mm must be >= 0 (0 = unknown)": self.cp_cd_length_mm >= 0,
            "reference_learn_frames must be >= 1": self.reference_learn_frames >= 1,
            "reference_lag_frames must be >= 0": self.reference_lag_frames >= 0,
            "deployment_start_mm must be > 0": self.deployment_start_mm > 0,
            "deployment_release_s must be > 0": self.deployment_release_s > 0,
            "retraction_margin_mm must be >= 0": self.retraction_margin_mm >= 0,
            "annulus diameter range must be 0 < min < max": 0
            < self.annulus_diameter_min_mm
            < self.annulus_diameter_max_mm,
            "annulus_consistency_mm must be > 0": self.annulus_consistency_mm > 0,
            "stent_tip_consistency_mm must be > 0": self.stent_tip_consistency_mm > 0,
            "anchor_consistency_mm must be > 0": self.anchor_consistency_mm > 0,
            "anchor_window_frames must be >= 1": self.anchor_window_frames >= 1,
            "depth_limit_mm must be > 0": self.depth_limit_mm > 0,
            "lateral_limit_mm must be > 0": self.lateral_limit_mm > 0,
            "pigtail_missing_max_s must be >= 0": self.pigtail_missing_max_s >= 0,
            "annulus_hold_max_s must be >= 0": self.annulus_hold_max_s >= 0,
            "reattach_tolerance_mm must be > 0": self.reattach_tolerance_mm > 0,
            "reattach_window_s must be > 0": self.reattach_window_s > 0,
            "pt_history_s must be > 0": self.pt_history_s > 0,
            "binding_average_s must be >= 0": self.binding_average_s >= 0,
            "max_predicted_s must be >= 0": self.max_predicted_s >= 0,
            "min_track_hits must be >= 1": self.min_track_hits >= 1,
            "max_keypoint_std_mm must be > 0": self.max_keypoint_std_mm > 0,
            "max_staleness_s must be >= 0": self.max_staleness_s >= 0,
        }
        errors = [msg for msg, ok in checks.items() if not ok]
        if errors:
            raise ValueError("invalid GeometryParams: " + "; ".join(errors))
