"""Temporal tracking of the 11 TAVI keypoints (no ROS).

Per frame, :class:`KeypointTracker` takes the detector output (positions and visibility probabilities)
and returns filtered positions, velocities, 1-sigma uncertainties and a state per keypoint.

Motion model. Heartbeat and breathing move the aortic root and everything in it (pigtail, delivery
system, valve) together, fast (systolic excursion in ~0.2 s); each point's own motion relative to that
(advancing the catheter, deploying the valve) is slow. So every keypoint is ``common + offset_k``:

- ``common`` is one constant-velocity Kalman filter measured by the weighted mean of the accepted
  keypoints' innovations, so it averages the detector noise of all points. Its process noise adapts to
  the motion: it rises from ``common_process_noise_px2_s3`` (still) towards
  ``common_process_noise_max_px2_s3`` with the recent normalised innovation squared (NIS), so still
  stretches are smoothed hard while systole is followed with little lag;
- ``offset_k`` are eleven constant-velocity Kalman filters (the vectorised :class:`CvKalmanBank`, equal to
  filterpy) with a low process noise (``process_noise_px2_s3``), measured by ``z_k - common``: they are
  smoothed hard, and a point that is missed keeps moving with the others instead of coasting on its
  own stale velocity through a heartbeat. Relative geometry (tip depth against the annulus) is the
  difference of offsets, so the common motion and its lag cancel out of it.

Per frame:

- a detection counts when its visibility is at least ``visibility_threshold`` and its coordinates are
  finite; its measurement noise grows as the confidence drops (``sigma = measurement_std_px / visibility``);
- group consistency: in each consistency set (e.g. the four anatomical points) detections are rejected
  as outliers when fewer than the set's minimum are detected in the frame (a lone AA1 without the rest
  of the contrast-filled root is more likely a false positive than contrast);
- gating: with three or more tracked detections, each one's innovation is compared with their median
  (the common motion's share) against its own offset and measurement variance; with fewer, the whole
  innovation against the full predicted variance. A squared Mahalanobis distance above ``gate_chi2``
  rejects the detection; after ``reinit_after_rejections`` consecutive rejections the track restarts
  there (the point really moved, or the track was wrong). A track rejecting the detection right after
  its first one restarts at once (it most likely started on an outlier);
- coasting: an undetected point is predicted (state PREDICTED) for at most ``max_coast_s``, then LOST;
- sequences: the tracker does not decide by itself that a new sequence started. The caller (frame
  admission) says so before ``update``: :meth:`KeypointTracker.start_sequence` (a new stream, timestamps
  going back) forgets everything; :meth:`KeypointTracker.resume_after_gap` (frames resume after a
  fluoroscopy pedal release) restarts every track, since nothing can be coasted through seconds without
  images. The next :class:`TrackedKeypoints` reports ``reset``. A time going backwards without
  ``start_sequence`` is refused (``ValueError``); an unannounced interval longer than ``max_coast_s``
  expires every track by the coasting rule (each restarts at its next detection), without ``reset``.
  Irregular and dropped frames are ordinary variable ``dt`` for the filters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from tavi_perception.keypoints import NUM_KEYPOINTS, Kp
from tavi_perception.tracking.kalman import CvKalmanBank


class KeypointState(IntEnum):
    """Per-keypoint track state; values equal ``tavi_msgs/Keypoint`` ``STATE_*``."""

    MEASURED = 0
    PREDICTED = 1
    LOST = 2


DEFAULT_CONSISTENCY_SETS: tuple[tuple[tuple[Kp, ...], int], ...] = (
    ((Kp.AA1, Kp.AA2, Kp.STJ1, Kp.STJ2), 2),
    ((Kp.CP, Kp.CM, Kp.CD, Kp.CT), 2),
    ((Kp.FE1, Kp.FE2), 2),
)

_ALL = np.ones(1, dtype=bool)
_MEASURED, _PREDICTED, _LOST = (int(s) for s in KeypointState)


@dataclass(frozen=True)
class TrackerParams:
    """Tracker parameters. Pixel values refer to the image the detections are expressed in.

    Defaults suit 512² fluoroscopy at 7.5-30 fps (about 0.2-0.5 mm/px at the isocentre).
    """

    visibility_threshold: float = 0.5  # [1] minimum visibility probability for a detection
    measurement_std_px: float = 2.0  # [px] detector noise (1 sigma per axis) at visibility 1
    common_process_noise_px2_s3: float = 300.0  # [px²/s³] white acceleration of the shared motion, still
    common_process_noise_max_px2_s3: float = 1.0e5  # [px²/s³] its ceiling in systole (= the above: fixed)
    process_noise_px2_s3: float = 30.0  # [px²/s³] white acceleration of each point's own motion
    init_velocity_std_px_s: float = 20.0  # [px/s] own-velocity uncertainty of a new track (devices: ~5 mm/s)
    common_init_velocity_std_px_s: float = 100.0  # [px/s] velocity uncertainty of restarted common motion
    gate_chi2: float = 13.8  # [1] Mahalanobis² gate, χ² with 2 dof (13.8 = 99.9 %)
    reinit_after_rejections: int = 3  # consecutive gated-out detections before the track restarts there
    max_coast_s: float = 0.5  # [s] prediction-only time before a keypoint is LOST
    consistency_sets: tuple[tuple[tuple[Kp, ...], int], ...] = DEFAULT_CONSISTENCY_SETS

    def __post_init__(self) -> None:
        checks = {
            "visibility_threshold must be in (0, 1]": 0.0 < self.visibility_threshold <= 1.0,
            "measurement_std_px must be > 0": self.measurement_std_px > 0,
            "common_process_noise_px2_s3 must be > 0": self.common_process_noise_px2_s3 > 0,
            "common_process_noise_max_px2_s3 must be >= common_process_noise_px2_s3": (
                self.common_process_noise_max_px2_s3 >= self.common_process_noise_px2_s3
            ),
            "process_noise_px2_s3 must be > 0": self.process_noise_px2_s3 > 0,
            "init_velocity_std_px_s must be >= 0": self.init_velocity_std_px_s >= 0,
            "common_init_velocity_std_px_s must be >= 0": self.common_init_velocity_std_px_s >= 0,
            "gate_chi2 must be > 0": self.gate_chi2 > 0,
            "reinit_after_rejections must be >= 1": self.reinit_after_rejections >= 1,
            "max_coast_s must be > 0": self.max_coast_s > 0,
        }
        errors = [msg for msg, ok in checks.items() if not ok]
        for members, minimum in self.consistency_sets:
            if not 1 <= minimum <= len(members):
                errors.append(f"consistency set {[Kp(m).name for m in members]} needs 1 <= minimum <= size")
        if errors:
            raise ValueError("invalid TrackerParams: " + "; ".join(errors))


@dataclass
class TrackedKeypoints:
    """Tracker output for one frame, in schema order (11 rows)."""

    t_s: float  # [s] time of the frame
    xy_px: np.ndarray  # (11, 2) filtered position [px]; moves with the common motion (meaningless) when LOST
    velocity_px_s: np.ndarray  # (11, 2) filtered velocity [px/s]
    std_px: np.ndarray  # (11,) 1-sigma isotropic position uncertainty [px]; keeps growing while LOST
    state: np.ndarray  # (11,) KeypointState values (uint8)
    visibility: np.ndarray  # (11,) detector visibility probability as received
    since_measured_s: np.ndarray  # (11,) [s] since the last accepted detection (inf when never / LOST)
    rejected: np.ndarray  # (11,) bool: a detection was present but rejected (gate or group consistency)
    hits: np.ndarray  # (11,) int: detections accepted since the track (re)started (0 when LOST)
    reset: bool = False  # tracks restarted here: the caller started a sequence or resumed after a gap


# The common motion's NIS average weights the newest frame by this much; its process noise grows as
# NIS**_NIS_POWER (an NIS of 1: the model explains the motion). Tuned with `tavi-perception eval-tracking`.
_NIS_WEIGHT = 0.5
_NIS_POWER = 3.0


class KeypointTracker:
    """Kalman tracking of the 11 keypoints as shared motion plus per-point offsets (module docstring)."""

    def __init__(self, params: TrackerParams | None = None) -> None:
        self.params = params or TrackerParams()
        self._offsets = CvKalmanBank(NUM_KEYPOINTS)
        self._common = CvKalmanBank(1)
        sets = self.params.consistency_sets
        self._set_members = np.zeros((len(sets), NUM_KEYPOINTS))  # membership matrix of the consistency sets
        for row, (members, _) in enumerate(sets):
            self._set_members[row, [int(m) for m in members]] = 1.0
        self._set_minimum = np.array([minimum for _, minimum in sets], dtype=float)
        self.start_sequence()
        self._restarted = False  # the first frame of a new tracker is no restart

    def start_sequence(self) -> None:
        """A new sequence starts with the next frame (new stream, time going back): forget everything."""
        self._t_s: float | None = None
        self._forget_tracks()

    def resume_after_gap(self, gap_s: float) -> None:
        """Frames resume after ``gap_s`` [s] without images (e.g. the fluoroscopy pedal was released).

        Every track restarts at its next detection: the heart and the devices moved unseen meanwhile,
        so no prediction survives the gap. The clock is kept (a later time going back is refused).
        """
        if not (math.isfinite(gap_s) and gap_s >= 0.0):
            raise ValueError(f"gap_s must be a finite duration >= 0 s, got {gap_s!r}")
        self._forget_tracks()

    def _forget_tracks(self) -> None:
        """Every track inactive, the common motion at rest; the next output reports ``reset``."""
        self._restarted = True
        self._active = np.zeros(NUM_KEYPOINTS, dtype=bool)
        self._since_s = np.full(NUM_KEYPOINTS, math.inf)
        self._rejections = np.zeros(NUM_KEYPOINTS, dtype=int)
        self._hits = np.zeros(NUM_KEYPOINTS, dtype=int)  # accepted detections since the track started
        self._offsets.vel_px_s[:] = 0.0
        self._nis = 1.0  # recent normalised innovation squared of the common motion, per axis
        self._restart_common()

    def _restart_common(self) -> None:
        """Common motion at rest where it is (its absolute value is arbitrary: the offsets absorb it)."""
        c = self._common
        c.initialise(_ALL, c.pos_px, np.zeros(1), self.params.common_init_velocity_std_px_s**2)

    def update(self, t_s: float, xy_px: np.ndarray, visibility: np.ndarray) -> TrackedKeypoints:
        """Fuse one frame of detections taken at ``t_s`` [s]; ``xy_px`` (11, 2), ``visibility`` (11,)."""
        xy, vis = self._validate(t_s, xy_px, visibility)
        p = self.params
        dt_s = 0.0 if self._t_s is None else t_s - self._t_s
        if dt_s < 0.0:
            raise ValueError(f"time went back {-dt_s:.3f} s from {self._t_s!r} s without start_sequence()")
        reset = self._restarted  # the caller started a sequence or resumed after a gap
        if dt_s > p.max_coast_s and not reset:  # no track coasts this long: all restart, unannounced
            self._forget_tracks()
        if self._restarted:
            dt_s = 0.0  # restarted tracks start at this frame
        self._restarted = False
        self._t_s = t_s

        detected = (vis >= p.visibility_threshold) & np.isfinite(xy).all(axis=1)
        weak_sets = self._set_members @ detected < self._set_minimum
        group_rejected = detected & (weak_sets @ self._set_members > 0)
        detected &= ~group_rejected
        z = np.where(detected[:, None], xy, 0.0)
        r_px2 = (p.measurement_std_px / np.clip(vis, p.visibility_threshold, 1.0)) ** 2

        offsets, common, active = self._offsets, self._common, self._active
        common.predict(dt_s, self.common_process_noise_px2_s3)
        offsets.predict(dt_s, p.process_noise_px2_s3)
        own_var = offsets.p_pp + r_px2
        common_prior_px = common.pos_px.copy()
        innovation = z - offsets.pos_px - common_prior_px
        candidate = detected & active
        if np.count_nonzero(candidate) >= 3:
            ordered = np.sort(innovation[candidate], axis=0)
            n = len(ordered)
            own = innovation - 0.5 * (ordered[(n - 1) // 2] + ordered[n // 2])  # minus the median
            d2 = np.einsum("ij,ij->i", own, own) / own_var
        else:
            d2 = np.einsum("ij,ij->i", innovation, innovation) / (own_var + common.p_pp)
        accept = candidate & (d2 <= p.gate_chi2)
        gated_out = candidate & ~accept
        self._rejections = np.where(gated_out, self._rejections + 1, 0)
        # a track whose single detection disagrees with the next one most likely started on an outlier
        restart = detected & (
            ~active | (self._rejections >= p.reinit_after_rejections) | (gated_out & (self._hits < 2))
        )
        self._rejections[restart] = 0
        self._hits = np.where(restart, 1, self._hits + accept)

        # The accepted detections' weighted mean innovation measures the common motion; the offsets only
        # see each innovation minus that mean, so they never soak up common motion the common filter has
        # not caught up with yet (the split common/offset would otherwise drift and ring).
        shared = np.zeros(2)
        if accept.any():
            weight = np.where(accept, 1.0 / own_var, 0.0)
            total = weight.sum()
            shared = (weight @ innovation) / total
            common_r = 1.0 / total
            self._nis += _NIS_WEIGHT * (
                0.5 * float(shared @ shared) / (common.p_pp[0] + common_r) - self._nis
            )
            common.update(_ALL, common.pos_px + shared, np.array([common_r]))
        offsets.update(accept, z - common_prior_px - shared, r_px2)
        offsets.initialise(restart, z - common.pos_px, r_px2, p.init_velocity_std_px_s**2)

        measured = accept | restart
        since = np.where(measured, 0.0, self._since_s + dt_s)
        self._active = (active & (measured | (since <= p.max_coast_s))) | restart
        self._since_s = np.where(self._active, since, math.inf)
        offsets.vel_px_s *= self._active[:, None]
        if not self._active.any():
            self._restart_common()

        state = np.where(measured, _MEASURED, np.where(self._active, _PREDICTED, _LOST))
        return TrackedKeypoints(
            t_s=float(t_s),
            xy_px=offsets.pos_px + common.pos_px,
            velocity_px_s=offsets.vel_px_s + common.vel_px_s,
            std_px=np.sqrt(offsets.p_pp + common.p_pp),
            state=state.astype(np.uint8),
            visibility=vis.copy(),
            since_measured_s=self._since_s.copy(),
            rejected=group_rejected | (gated_out & ~restart),
            hits=np.where(self._active, self._hits, 0),
            reset=reset,
        )

    @property
    def common_process_noise_px2_s3(self) -> float:
        """Process noise of the common motion for the next prediction [px²/s³] (adapted to the motion)."""
        p = self.params
        q = p.common_process_noise_px2_s3 * self._nis**_NIS_POWER
        return float(min(max(q, p.common_process_noise_px2_s3), p.common_process_noise_max_px2_s3))

    @staticmethod
    def _validate(t_s: float, xy_px: np.ndarray, visibility: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not math.isfinite(t_s):
            raise ValueError(f"t_s must be a finite time in seconds, got {t_s!r}")
        xy = np.asarray(xy_px, dtype=float)
        vis = np.asarray(visibility, dtype=float)
        if xy.shape != (NUM_KEYPOINTS, 2):
            raise ValueError(f"xy_px must have shape ({NUM_KEYPOINTS}, 2), got {xy.shape}")
        if vis.shape != (NUM_KEYPOINTS,):
            raise ValueError(f"visibility must have shape ({NUM_KEYPOINTS},), got {vis.shape}")
        if np.isnan(vis).any():
            raise ValueError("visibility contains NaN")
        return xy, vis
