"""FrameAdmission rules as units (no ROS, no network): one test per rule."""

from __future__ import annotations

import numpy as np
import pytest

from tavi_perception.core.admission import (
    FROZEN_PREFIX,
    AdmissionParams,
    Continuity,
    FrameAdmission,
    Verdict,
)


def _frame(seed: int, side: int = 64) -> np.ndarray:
    """A smooth, structured grey frame (passes the non-scene rules), different per seed."""
    y, x = np.mgrid[0:side, 0:side] / side
    phase = seed * 0.7
    image = 120 + 60 * np.sin(6 * x + phase) * np.cos(4 * y - phase) + 20 * x
    return np.clip(image, 0, 255).astype(np.uint8)


def _stream(admission: FrameAdmission, times_s: list[float], now_offset_s: float = 0.01) -> list:
    """Admit a fresh frame at each time (received ``now_offset_s`` later); the decisions."""
    return [admission.admit(t, t + now_offset_s, _frame(i)) for i, t in enumerate(times_s)]


def test_the_first_frame_starts_a_new_sequence_and_the_next_ones_continue() -> None:
    first, second = _stream(FrameAdmission(), [10.0, 10.033])
    assert first.verdict is Verdict.ADMITTED and first.continuity is Continuity.NEW_SEQUENCE
    assert second.continuity is Continuity.CONTINUE and second.gap_s == pytest.approx(0.033)


def test_a_stale_frame_is_rejected_with_its_age() -> None:
    admission = FrameAdmission(AdmissionParams(max_frame_age_ms=200.0))
    decision = admission.admit(10.0, 10.5, _frame(0))
    assert decision.verdict is Verdict.REJECTED and decision.rule == "stale"
    assert decision.reason.startswith("stale frame: 500 ms old")
    assert admission.counts["stale"] == 1 and admission.counts["admitted"] == 0


def test_the_age_checks_are_off_without_a_receiver_clock() -> None:
    decision = FrameAdmission().admit(10.0, None, _frame(0))
    assert decision.admitted


def test_a_frame_stamped_in_the_future_is_rejected_and_leaves_the_stream_untouched() -> None:
    admission = FrameAdmission(AdmissionParams(max_future_stamp_ms=100.0))
    _stream(admission, [10.0, 10.033])
    ahead = admission.admit(15.0, 10.067, _frame(7))  # stamped 5 s ahead of the receiver's clock
    assert ahead.verdict is Verdict.REJECTED and ahead.rule == "future_stamp"
    assert "ahead of the receiver's clock" in ahead.reason
    after = admission.admit(10.067, 10.07, _frame(8))  # the good stream goes on: not out of order, no reset
    assert after.continuity is Continuity.CONTINUE and after.gap_s == pytest.approx(0.034)
    assert admission.counts["future_stamp"] == 1 and admission.counts["new_sequence"] == 1


def test_a_frame_stamped_before_the_previous_one_is_rejected_as_out_of_order() -> None:
    admission = FrameAdmission()
    _stream(admission, [10.0, 10.1])
    late = admission.admit(10.05, 10.11, _frame(5))
    same = admission.admit(10.1, 10.11, _frame(6))
    assert late.rule == same.rule == "out_of_order" and late.verdict is Verdict.REJECTED
    assert "50.0 ms before the previous frame" in late.reason
    assert admission.admit(10.133, 10.14, _frame(7)).continuity is Continuity.CONTINUE


def test_stamps_jumping_back_further_than_stamp_reset_s_start_a_new_sequence() -> None:
    admission = FrameAdmission(AdmissionParams(stamp_reset_s=1.0))
    _stream(admission, [100.0, 100.033])
    looped = admission.admit(50.0, 50.01, _frame(9))  # a looping bag
    assert looped.verdict is Verdict.ADMITTED and looped.continuity is Continuity.NEW_SEQUENCE
    assert admission.counts["new_sequence"] == 2


def test_a_gap_longer_than_gap_after_s_is_admitted_as_a_gap_with_its_length() -> None:
    admission = FrameAdmission(AdmissionParams(gap_after_s=0.5))
    decisions = _stream(admission, [10.0, 10.4, 11.4])
    assert decisions[1].continuity is Continuity.CONTINUE
    assert decisions[2].continuity is Continuity.GAP and decisions[2].gap_s == pytest.approx(1.0)
    assert admission.counts["gap"] == 1 and admission.counts["admitted"] == 3


def test_a_frame_larger_than_max_image_side_px_is_rejected_before_decoding() -> None:
    admission = FrameAdmission(AdmissionParams(max_image_side_px=64))
    assert admission.screen(10.0, 10.01, 64, 64) is None
    decision = admission.screen(10.0, 10.01, 65, 64)
    assert decision is not None and decision.rule == "oversize" and "65x64" in decision.reason
    assert admission.admit(10.0, 10.01, np.zeros((80, 20), np.uint8)).rule == "oversize"
    assert admission.counts["oversize"] == 2


def test_an_undecodable_frame_is_counted_with_the_reason() -> None:
    admission = FrameAdmission()
    decision = admission.undecodable("truncated data")
    assert decision.verdict is Verdict.REJECTED and decision.reason == "bad image: truncated data"
    assert admission.counts["undecodable"] == 1


def test_a_bit_identical_repeat_is_not_a_new_measurement_and_gets_no_answer() -> None:
    admission = FrameAdmission(AdmissionParams(frozen_after_s=0.5))
    image = _frame(0)
    assert admission.admit(10.0, 10.01, image).admitted
    repeat = admission.admit(10.033, 10.04, image.copy())
    assert repeat.verdict is Verdict.REPEAT and repeat.reason == "" and admission.counts["repeat"] == 1
    fresh = admission.admit(10.067, 10.07, _frame(1))  # new pixels: continues from the last admitted frame
    assert fresh.continuity is Continuity.CONTINUE and fresh.gap_s == pytest.approx(0.067)


def test_repeats_for_longer_than_frozen_after_s_are_rejected_as_a_frozen_source() -> None:
    admission = FrameAdmission(AdmissionParams(frozen_after_s=0.5, gap_after_s=0.5))
    image = _frame(0)
    admission.admit(10.0, 10.01, image)
    times = [10.0 + 0.1 * k for k in range(1, 11)]  # one second of the same pixels, new stamps
    verdicts = [admission.admit(t, t + 0.01, image).verdict for t in times]
    assert verdicts[:5] == [Verdict.REPEAT] * 5  # up to 0.5 s: a grabber repeating a frame
    assert verdicts[5:] == [Verdict.REJECTED] * 5  # beyond: frozen
    frozen = admission.admit(11.1, 11.11, image)
    assert (
        frozen.rule == "frozen"
        and frozen.reason.startswith(FROZEN_PREFIX)
        and "frozen source" in frozen.reason
    )
    moving = admission.admit(11.2, 11.21, _frame(1))  # the source moves again after 1.2 s of old pixels
    assert moving.continuity is Continuity.GAP and moving.gap_s == pytest.approx(1.2)


def test_repeats_are_new_frames_when_the_repeat_rule_is_off() -> None:
    admission = FrameAdmission(AdmissionParams(reject_repeated=False))
    image = _frame(0)
    admission.admit(10.0, 10.01, image)
    assert admission.admit(10.033, 10.04, image).continuity is Continuity.CONTINUE


def test_a_non_scene_frame_is_rejected_and_the_next_frame_continues_from_the_last_admitted_one() -> None:
    admission = FrameAdmission()
    admission.admit(10.0, 10.01, _frame(0))
    black = admission.admit(10.033, 10.04, np.zeros((64, 64), np.uint8))
    assert black.verdict is Verdict.REJECTED and black.rule == "non_scene" and "black" in black.reason
    after = admission.admit(10.067, 10.07, _frame(1))
    assert after.continuity is Continuity.CONTINUE and after.gap_s == pytest.approx(0.067)


def test_stamp_rules_alone_give_continuity_to_detections_without_pixels() -> None:
    admission = FrameAdmission()
    assert admission.admit_stamp(1.0, None).continuity is Continuity.NEW_SEQUENCE
    assert admission.admit_stamp(1.0, None).rule == "out_of_order"
    assert admission.admit_stamp(2.0, None).continuity is Continuity.GAP


def test_invalid_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="frozen_after_s"):
        AdmissionParams(frozen_after_s=-1.0)
