"""KeypointTracker behaviour: gating, coasting, group consistency, time handling, smoothing."""

from __future__ import annotations

import numpy as np
import pytest
from tavi_msgs.msg import Keypoint

from tavi_perception.keypoints import Kp
from tavi_perception.tracking import KeypointState, KeypointTracker, TrackerParams

DT = 1.0 / 15.0


def _scene() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(100, 400, size=(11, 2))


def _all_visible() -> np.ndarray:
    return np.ones(11)


def _warm_tracker(xy: np.ndarray, frames: int = 20, params: TrackerParams | None = None) -> KeypointTracker:
    tracker = KeypointTracker(params)
    for i in range(frames):
        tracker.update(i * DT, xy, _all_visible())
    return tracker


def test_state_values_equal_the_message_constants() -> None:
    assert KeypointState.MEASURED == Keypoint.STATE_MEASURED
    assert KeypointState.PREDICTED == Keypoint.STATE_PREDICTED
    assert KeypointState.LOST == Keypoint.STATE_LOST


def test_first_detections_start_measured_tracks_and_undetected_points_are_lost() -> None:
    xy = _scene()
    vis = _all_visible()
    vis[Kp.PT] = 0.1
    out = KeypointTracker().update(0.0, xy, vis)
    assert out.state[Kp.PT] == KeypointState.LOST
    assert (np.delete(out.state, Kp.PT) == KeypointState.MEASURED).all()
    np.testing.assert_array_equal(np.delete(out.xy_px, Kp.PT, axis=0), np.delete(xy, Kp.PT, axis=0))


def test_gating_rejects_an_injected_outlier() -> None:
    xy = _scene()
    tracker = _warm_tracker(xy)
    jumped = xy.copy()
    jumped[Kp.CT] += [60.0, -45.0]
    out = tracker.update(20 * DT, jumped, _all_visible())
    assert out.rejected[Kp.CT]
    assert out.state[Kp.CT] == KeypointState.PREDICTED
    assert np.hypot(*(out.xy_px[Kp.CT] - xy[Kp.CT])) < 1.0
    assert not out.rejected[Kp.CD]


def test_repeated_consistent_jump_restarts_the_track_at_the_new_position() -> None:
    xy = _scene()
    params = TrackerParams(reinit_after_rejections=3)
    tracker = _warm_tracker(xy, params=params)
    moved = xy.copy()
    moved[Kp.PT] += [80.0, 0.0]
    states = [tracker.update((20 + i) * DT, moved, _all_visible()) for i in range(3)]
    assert [bool(s.rejected[Kp.PT]) for s in states] == [True, True, False]
    assert states[-1].state[Kp.PT] == KeypointState.MEASURED
    np.testing.assert_allclose(states[-1].xy_px[Kp.PT], moved[Kp.PT])


def test_missing_point_coasts_until_the_limit_then_is_lost() -> None:
    xy = _scene()
    params = TrackerParams(max_coast_s=0.3)
    tracker = _warm_tracker(xy, params=params)
    vis = _all_visible()
    vis[Kp.PT] = 0.0
    states, since = [], []
    for i in range(1, 8):
        out = tracker.update(19 * DT + i * DT, xy, vis)
        states.append(int(out.state[Kp.PT]))
        since.append(i * DT)
    expected = [KeypointState.PREDICTED if s <= 0.3 else KeypointState.LOST for s in since]
    assert states == expected
    assert (out.velocity_px_s[Kp.PT] == 0).all()


def test_coasting_prediction_follows_the_velocity_and_grows_the_uncertainty() -> None:
    tracker = KeypointTracker()
    xy = _scene()
    velocity = np.array([30.0, -15.0])
    for i in range(30):
        out = tracker.update(i * DT, xy + velocity * i * DT, _all_visible())
    std_measured = out.std_px[Kp.CT]
    vis = _all_visible()
    vis[Kp.CT] = 0.0
    out = tracker.update(31 * DT, xy + velocity * 31 * DT, vis)  # a dropped frame, then a miss
    assert out.state[Kp.CT] == KeypointState.PREDICTED
    np.testing.assert_allclose(out.xy_px[Kp.CT], xy[Kp.CT] + velocity * 31 * DT, atol=0.5)
    assert out.std_px[Kp.CT] > std_measured


def test_time_going_backwards_is_refused_without_a_new_sequence() -> None:
    tracker = _warm_tracker(_scene())
    with pytest.raises(ValueError, match="start_sequence"):
        tracker.update(0.1, _scene(), _all_visible())


def test_a_new_sequence_restarts_every_track_and_reports_the_reset() -> None:
    xy = _scene()
    tracker = _warm_tracker(xy)
    tracker.start_sequence()
    later = xy + 5.0
    out = tracker.update(0.1, later, _all_visible())  # a bag replay looped back
    assert out.reset
    assert (out.state == KeypointState.MEASURED).all()
    np.testing.assert_allclose(out.xy_px, later)
    assert (out.velocity_px_s == 0).all()
    assert np.isfinite(out.std_px).all()
    assert not tracker.update(0.1 + DT, later, _all_visible()).reset


def test_resuming_after_a_gap_restarts_the_tracks_at_their_detections() -> None:
    xy = _scene()
    tracker = _warm_tracker(xy)
    tracker.resume_after_gap(30.0)
    out = tracker.update(19 * DT + 30.0, xy + 40.0, _all_visible())
    assert out.reset
    assert (out.hits == 1).all()
    np.testing.assert_allclose(out.xy_px, xy + 40.0)
    np.testing.assert_allclose(out.std_px, TrackerParams().measurement_std_px)  # no 30 s of growth


def test_an_unannounced_gap_beyond_the_coasting_limit_restarts_the_tracks_without_reset() -> None:
    xy = _scene()
    tracker = _warm_tracker(xy, params=TrackerParams(max_coast_s=0.5))
    out = tracker.update(19 * DT + 0.8, xy + 40.0, _all_visible())
    assert not out.reset
    assert (out.hits == 1).all()
    np.testing.assert_allclose(out.xy_px, xy + 40.0)


def test_duplicate_timestamp_is_fused_without_reset() -> None:
    xy = _scene()
    tracker = _warm_tracker(xy)
    out = tracker.update(19 * DT, xy + 0.5, _all_visible())
    assert not out.reset
    assert (out.state == KeypointState.MEASURED).all()
    assert np.isfinite(out.xy_px).all()


def test_irregular_and_dropped_frames_track_a_moving_point() -> None:
    rng = np.random.default_rng(3)
    tracker = KeypointTracker()
    xy0 = _scene()
    velocity = np.array([40.0, 25.0])
    t = 0.0
    errors = []
    for _ in range(120):
        t += float(rng.choice([DT, 2 * DT, 0.5 * DT, 3 * DT]))
        truth = xy0 + velocity * t
        out = tracker.update(t, truth + rng.normal(0, 2.0, size=(11, 2)), _all_visible())
        errors.append(out.xy_px - truth)
        assert not out.reset
    rms_error_px = np.sqrt(np.mean(np.array(errors[20:]) ** 2))
    assert rms_error_px < 2.0  # below the detector noise
    np.testing.assert_allclose(out.velocity_px_s, np.tile(velocity, (11, 1)), atol=15.0)


def test_lone_detection_in_a_mostly_absent_group_is_rejected() -> None:
    xy = _scene()
    vis = np.zeros(11)
    vis[[Kp.CP, Kp.CM, Kp.CD, Kp.CT, Kp.PT]] = 1.0
    vis[Kp.AA1] = 0.95  # contrast gone, a false AA1 detection
    out = KeypointTracker().update(0.0, xy, vis)
    assert out.rejected[Kp.AA1]
    assert out.state[Kp.AA1] == KeypointState.LOST
    assert out.state[Kp.PT] == KeypointState.MEASURED  # the pigtail stands alone by design


def test_low_confidence_detection_moves_the_estimate_less() -> None:
    xy = _scene()
    moved = xy.copy()
    moved[Kp.CT] += [3.0, 0.0]
    shifts = {}
    for confidence in (1.0, 0.55):
        tracker = _warm_tracker(xy)
        vis = _all_visible()
        vis[Kp.CT] = confidence
        out = tracker.update(20 * DT, moved, vis)
        shifts[confidence] = out.xy_px[Kp.CT, 0] - xy[Kp.CT, 0]
    assert 0 < shifts[0.55] < shifts[1.0]


def test_tracking_reduces_frame_to_frame_jitter_of_a_still_point() -> None:
    rng = np.random.default_rng(11)
    xy = _scene()
    tracker = KeypointTracker()
    raw, tracked = [], []
    for i in range(200):
        z = xy + rng.normal(0, 2.0, size=(11, 2))
        raw.append(z)
        tracked.append(tracker.update(i * DT, z, _all_visible()).xy_px)
    raw_jitter = np.sqrt(np.mean(np.diff(np.array(raw)[20:], axis=0) ** 2))
    tracked_jitter = np.sqrt(np.mean(np.diff(np.array(tracked)[20:], axis=0) ** 2))
    assert tracked_jitter < 0.5 * raw_jitter


def test_non_finite_coordinates_count_as_a_miss() -> None:
    xy = _scene()
    tracker = _warm_tracker(xy)
    bad = xy.copy()
    bad[Kp.CD] = np.nan
    out = tracker.update(20 * DT, bad, _all_visible())
    assert out.state[Kp.CD] == KeypointState.PREDICTED
    assert np.isfinite(out.xy_px).all()


@pytest.mark.parametrize(
    ("t_s", "xy", "vis", "message"),
    [
        (float("nan"), np.zeros((11, 2)), np.ones(11), "finite"),
        (0.0, np.zeros((10, 2)), np.ones(11), "xy_px must have shape"),
        (0.0, np.zeros((11, 2)), np.ones(3), "visibility must have shape"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(t_s, xy, vis, message) -> None:
    with pytest.raises(ValueError, match=message):
        KeypointTracker().update(t_s, xy, vis)


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="max_coast_s"):
        TrackerParams(max_coast_s=0.0)
    with pytest.raises(ValueError, match="consistency set"):
        TrackerParams(consistency_sets=(((Kp.FE1, Kp.FE2), 3),))


def test_missed_point_keeps_moving_with_the_others_through_a_heartbeat() -> None:
    xy = _scene()
    tracker = KeypointTracker()
    vis = _all_visible()

    def shift(t: float) -> np.ndarray:  # a sharp systolic excursion of the whole root, 25 px in 0.2 s
        phase = (t * 1.5) % 1.0
        return np.array([0.4, 1.0]) * 25.0 * np.sin(np.pi * min(phase / 0.3, 1.0)) ** 2

    errors = []
    for i in range(60):
        t = i * DT
        vis[Kp.PT] = 0.0 if i % 6 in (3, 4) else 1.0  # PT missed two frames in six
        out = tracker.update(t, xy + shift(t), vis)
        if i > 20 and vis[Kp.PT] == 0.0:
            assert out.state[Kp.PT] == KeypointState.PREDICTED
            # the coasted PT keeps its place relative to the measured catheter tip
            relative = (out.xy_px[Kp.PT] - out.xy_px[Kp.CT]) - (xy[Kp.PT] - xy[Kp.CT])
            errors.append(np.hypot(*relative))
    assert max(errors) < 1.0


def test_track_born_on_an_outlier_restarts_at_the_next_detection() -> None:
    xy = _scene()
    tracker = _warm_tracker(xy)
    vis = _all_visible()
    vis[Kp.FE1] = vis[Kp.FE2] = 0.0
    for i in range(20, 30):  # the frame edges leave for longer than the coasting limit
        tracker.update(i * DT, xy, vis)
    wrong = xy.copy()
    wrong[Kp.FE1] += [30.0, 25.0]
    first = tracker.update(30 * DT, wrong, _all_visible())
    assert first.state[Kp.FE1] == KeypointState.MEASURED and first.hits[Kp.FE1] == 1
    second = tracker.update(31 * DT, xy, _all_visible())
    assert second.hits[Kp.FE1] == 1
    np.testing.assert_allclose(second.xy_px[Kp.FE1], xy[Kp.FE1], atol=0.5)
    third = tracker.update(32 * DT, xy, _all_visible())
    assert third.hits[Kp.FE1] == 2 and third.hits[Kp.FE2] == 3


def test_gating_also_works_with_only_two_tracked_points() -> None:
    xy = _scene()
    vis = np.zeros(11)
    vis[[Kp.CD, Kp.CT]] = 1.0
    tracker = KeypointTracker()
    for i in range(20):
        tracker.update(i * DT, xy, vis)
    jumped = xy.copy()
    jumped[Kp.CT] += [0.0, 50.0]
    out = tracker.update(20 * DT, jumped, vis)
    assert out.rejected[Kp.CT] and not out.rejected[Kp.CD]
    assert np.hypot(*(out.xy_px[Kp.CT] - xy[Kp.CT])) < 1.0


def test_shared_motion_noise_rises_in_motion_and_falls_back_when_still() -> None:
    params = TrackerParams()
    tracker = _warm_tracker(_scene(), params=params)
    floor = tracker.common_process_noise_px2_s3
    assert floor == params.common_process_noise_px2_s3
    peak = floor
    for i in range(20, 30):  # the whole scene accelerates away (a systolic stroke)
        tracker.update(i * DT, _scene() + 400.0 * ((i - 19) * DT) ** 2, _all_visible())
        peak = max(peak, tracker.common_process_noise_px2_s3)
    assert peak > 10 * floor
    for i in range(30, 60):
        tracker.update(i * DT, _scene() + 400.0 * (11 * DT) ** 2, _all_visible())
    assert tracker.common_process_noise_px2_s3 < 2 * floor


@pytest.mark.parametrize("gap_s", [-0.1, float("inf"), float("nan")])
def test_a_gap_that_is_not_a_finite_duration_is_refused(gap_s: float) -> None:
    with pytest.raises(ValueError, match="gap_s"):
        KeypointTracker().resume_after_gap(gap_s)
