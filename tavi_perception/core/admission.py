"""Which frames are new measurements of the scene, and how they continue the sequence (no ROS).

:class:`FrameAdmission` holds every rule that decides whether a frame reaches the network and the
tracker, and the one rule that decides where a sequence starts; the perception node, the offline runner,
the demo and the evaluations share it through :class:`~tavi_perception.core.pipeline.PerceptionPipeline`.

Per frame (stamp ``t_s``, receiver clock ``now_s`` or None offline, the grey image), in order:

1. stale: older than ``max_frame_age_ms`` on arrival -> rejected ("stale frame: ...");
2. from the future: stamped more than ``max_future_stamp_ms`` ahead of the receiver's clock ->
   rejected; it leaves the stream's state untouched, so the good frames after it continue;
3. out of order: stamped at or before the latest frame, by up to ``stamp_reset_s`` -> rejected;
   further back -> a new sequence (a looping bag, a restarted source);
4. too large: a side above ``max_image_side_px`` -> rejected (checked before decoding when the
   caller knows the size, :meth:`FrameAdmission.screen`); undecodable frames are counted through
   :meth:`FrameAdmission.undecodable`;
5. repeat: pixels bit-identical to the last admitted frame's. Fluoroscopy carries quantum noise, so
   that is a frame grabber re-sending its last image, not a new measurement: answered with nothing
   (kind ``repeat``). Once no new pixels have arrived for longer than ``frozen_after_s`` (stamp time),
   every further repeat is rejected as a frozen source (reason starting "frozen image");
6. non-scene: black, uniform, saturated or noise (:mod:`tavi_perception.core.quality`) -> rejected;
   it does not update the tracks.

An admitted frame carries its continuity: ``NEW_SEQUENCE`` (the first frame, or stamps jumped back),
``GAP`` (more than ``gap_after_s`` since the last admitted frame; ``gap_s`` says how long) or
``CONTINUE``. Rejections do not change the state (latest stamp, last admitted frame), so a frame that
is rejected cannot disturb the frames after it. Every outcome is counted in
:attr:`FrameAdmission.counts` under its rule name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from tavi_perception.core.quality import QualityParams, non_scene_reason

FROZEN_PREFIX = "frozen image"  # invalid_reason of a frozen source's frames


class Continuity(enum.Enum):
    """How an admitted frame continues the sequence before it."""

    CONTINUE = "continue"
    GAP = "gap"
    NEW_SEQUENCE = "new_sequence"


class Verdict(enum.Enum):
    """What happens to a frame."""

    ADMITTED = "admitted"  # a new measurement: through the network, tracker and geometry
    REPEAT = "repeat"  # the last admitted pixels again: no output at all
    REJECTED = "rejected"  # answered with invalid guidance and the reason


# counter names (the keys of FrameAdmission.counts); "admitted" counts every admitted frame, of which
# "new_sequence" and "gap" started a sequence or resumed after a gap; every other rule counts its frames
RULES = (
    "admitted",
    "new_sequence",
    "gap",
    "repeat",
    "stale",
    "future_stamp",
    "out_of_order",
    "oversize",
    "undecodable",
    "frozen",
    "non_scene",
)


@dataclass(frozen=True)
class AdmissionParams:
    """Thresholds of the admission rules (module docstring); 0 disables a time check."""

    max_frame_age_ms: float = 200.0  # [ms] older on arrival: stale; 0 = never
    max_future_stamp_ms: float = 100.0  # [ms] stamped further ahead of the receiver: rejected; 0 = never
    stamp_reset_s: float = 1.0  # [s] a stamp this far before the latest one starts a new sequence
    max_image_side_px: int = 4096  # [px] larger frames are rejected
    gap_after_s: float = 0.5  # [s] longer since the last admitted frame: GAP
    frozen_after_s: float = 0.5  # [s] repeats for longer than this: frozen source
    reject_repeated: bool = True  # treat bit-identical repeats as repeats (False: as new frames)
    check_quality: bool = True  # apply the non-scene rules
    quality: QualityParams = field(default_factory=QualityParams)

    def __post_init__(self) -> None:
        for name in (
            "max_frame_age_ms",
            "max_future_stamp_ms",
            "stamp_reset_s",
            "gap_after_s",
            "frozen_after_s",
        ):
            if getattr(self, name) < 0.0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_image_side_px < 1:
            raise ValueError(f"max_image_side_px must be >= 1, got {self.max_image_side_px}")


@dataclass(frozen=True)
class Admission:
    """The decision on one frame."""

    verdict: Verdict
    rule: str  # the counter it went to (RULES)
    reason: str = ""  # why it was rejected (the guidance's invalid_reason); empty otherwise
    continuity: Continuity | None = None  # for an admitted frame
    gap_s: float = 0.0  # [s] time since the last admitted frame (GAP and CONTINUE; 0 for a new sequence)

    @property
    def admitted(self) -> bool:
        return self.verdict is Verdict.ADMITTED


class FrameAdmission:
    """The admission rules and the state they need (module docstring)."""

    def __init__(self, params: AdmissionParams | None = None) -> None:
        self.params = params or AdmissionParams()
        self.counts: dict[str, int] = dict.fromkeys(RULES, 0)
        self._latest_t_s: float | None = None  # stamp of the latest admitted or repeated frame
        self._admitted_t_s: float | None = None  # stamp of the last admitted frame (new pixels)
        self._admitted_image: np.ndarray | None = None

    def screen(
        self, t_s: float, now_s: float | None, width_px: int | None = None, height_px: int | None = None
    ) -> Admission | None:
        """The checks that need no pixels (stamps, size): the rejection, counted, or None to go on."""
        rejection = self._stamp_problem(t_s, now_s) or self._size_problem(width_px, height_px)
        if rejection is not None:
            self.counts[rejection.rule] += 1
        return rejection

    def undecodable(self, reason: str) -> Admission:
        """Count and return the rejection of a frame whose message could not be decoded."""
        self.counts["undecodable"] += 1
        return Admission(Verdict.REJECTED, "undecodable", f"bad image: {reason}")

    def admit(self, t_s: float, now_s: float | None, image: np.ndarray) -> Admission:
        """Decide on one decoded (H, W) grey frame stamped ``t_s`` [s]; ``now_s`` [s]: receiver clock
        in the stamps' time base, None when there is none (offline: no stale / future checks)."""
        return self._count(self._decide(t_s, now_s, image))

    def admit_stamp(self, t_s: float, now_s: float | None) -> Admission:
        """The stamp rules and the continuity alone, for detections made without pixels here."""
        return self._count(self._stamp_problem(t_s, now_s) or self._continue(t_s, None))

    def _count(self, decision: Admission) -> Admission:
        self.counts[decision.rule] += 1
        if decision.admitted and decision.rule != "admitted":
            self.counts["admitted"] += 1
        return decision

    def _decide(self, t_s: float, now_s: float | None, image: np.ndarray) -> Admission:
        p = self.params
        rejection = self._stamp_problem(t_s, now_s) or self._size_problem(image.shape[1], image.shape[0])
        if rejection is not None:
            return rejection
        previous = None if self._starts_sequence(t_s) else self._admitted_image
        if (
            p.reject_repeated
            and previous is not None
            and previous.shape == image.shape
            and previous.dtype == image.dtype
            and np.array_equal(previous, image)
        ):
            self._latest_t_s = t_s
            unchanged_s = t_s - self._admitted_t_s
            if unchanged_s > p.frozen_after_s:
                return Admission(
                    Verdict.REJECTED,
                    "frozen",
                    f"{FROZEN_PREFIX}: no new pixels for {unchanged_s:.2f} s > frozen_after_s "
                    f"{p.frozen_after_s:g} (frozen source)",
                )
            return Admission(Verdict.REPEAT, "repeat")
        if p.check_quality:
            reason = non_scene_reason(image, p.quality)
            if reason is not None:
                return Admission(Verdict.REJECTED, "non_scene", reason)
        return self._continue(t_s, image)

    def _starts_sequence(self, t_s: float) -> bool:
        return self._latest_t_s is None or t_s < self._latest_t_s - self.params.stamp_reset_s

    def _continue(self, t_s: float, image: np.ndarray | None) -> Admission:
        """Admit the frame at ``t_s``: its continuity, and it becomes the last admitted frame."""
        if self._starts_sequence(t_s):
            admission = Admission(Verdict.ADMITTED, "new_sequence", continuity=Continuity.NEW_SEQUENCE)
        else:
            gap_s = t_s - self._admitted_t_s
            continuity = Continuity.GAP if gap_s > self.params.gap_after_s else Continuity.CONTINUE
            rule = "gap" if continuity is Continuity.GAP else "admitted"
            admission = Admission(Verdict.ADMITTED, rule, continuity=continuity, gap_s=gap_s)
        self._latest_t_s = self._admitted_t_s = t_s
        self._admitted_image = image
        return admission

    def _stamp_problem(self, t_s: float, now_s: float | None) -> Admission | None:
        p = self.params
        if now_s is not None:
            age_ms = (now_s - t_s) * 1e3
            if p.max_frame_age_ms > 0 and age_ms > p.max_frame_age_ms:
                return Admission(
                    Verdict.REJECTED,
                    "stale",
                    f"stale frame: {age_ms:.0f} ms old > max_frame_age_ms {p.max_frame_age_ms:.0f}",
                )
            if p.max_future_stamp_ms > 0 and -age_ms > p.max_future_stamp_ms:
                return Admission(
                    Verdict.REJECTED,
                    "future_stamp",
                    f"stamp {-age_ms:.0f} ms ahead of the receiver's clock > max_future_stamp_ms "
                    f"{p.max_future_stamp_ms:.0f}",
                )
        latest = self._latest_t_s
        if latest is not None and latest - p.stamp_reset_s <= t_s <= latest:
            return Admission(
                Verdict.REJECTED,
                "out_of_order",
                f"out-of-order stamp: {(latest - t_s) * 1e3:.1f} ms before the previous frame",
            )
        return None

    def _size_problem(self, width_px: int | None, height_px: int | None) -> Admission | None:
        limit = self.params.max_image_side_px
        if width_px is None or height_px is None or max(width_px, height_px) <= limit:
            return None
        return Admission(
            Verdict.REJECTED,
            "oversize",
            f"image {width_px}x{height_px} larger than max_image_side_px {limit}",
        )
