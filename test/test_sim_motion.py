"""Cardiac and respiratory motion: stated ranges, periodicity, and one rigid motion for anatomy, devices
and the rendered image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tavi_perception.keypoints import Kp
from tavi_perception.sim import DeliveryState, ProcedureSimulator, sample_case
from tavi_perception.sim.motion import Motion

SEEDS = range(150)


def _cycle_samples(period_s: float) -> np.ndarray:
    return np.linspace(0.0, period_s, 400, endpoint=False)


def test_case_ranges_match_the_clinical_ranges() -> None:
    for seed in SEEDS:
        case = sample_case(seed)
        assert 19.0 <= case.anatomy.annulus_diameter_mm <= 29.0
        assert 1.2 <= case.imaging.view.magnification <= 1.6
        assert 60.0 <= case.motion.heart_rate_bpm <= 100.0
        assert 12.0 <= case.motion.respiratory_rate_per_min <= 20.0


def test_root_excursion_is_at_most_10_mm_per_beat() -> None:
    peaks = []
    for seed in SEEDS:
        motion = Motion(sample_case(seed).motion)
        t = _cycle_samples(60.0 / motion.params.heart_rate_bpm)
        excursion = np.linalg.norm(motion.cardiac_mm(t), axis=1)
        assert excursion.max() <= 10.0 + 1e-9
        assert excursion.min() == pytest.approx(0.0, abs=1e-9)  # returns to the diastolic position
        peaks.append(excursion.max())
    assert min(peaks) >= 4.0 - 1e-6


def test_respiration_is_cranio_caudal_within_5_mm() -> None:
    for seed in SEEDS:
        motion = Motion(sample_case(seed).motion)
        t = _cycle_samples(60.0 / motion.params.respiratory_rate_per_min)
        d = motion.respiratory_mm(t)
        np.testing.assert_array_equal(d[:, :2], 0.0)
        assert np.all(d[:, 2] <= 0.0)  # inspiration moves the heart down
        assert -d[:, 2].min() <= 5.0 + 1e-9
        assert -d[:, 2].min() >= 2.5 - 0.01


def test_motion_repeats_each_beat_and_breath() -> None:
    motion = Motion(sample_case(3).motion)
    beat = 60.0 / motion.params.heart_rate_bpm
    breath = 60.0 / motion.params.respiratory_rate_per_min
    t = np.linspace(0.0, 5.0, 50)
    np.testing.assert_allclose(motion.cardiac_mm(t + beat), motion.cardiac_mm(t), atol=1e-9)
    np.testing.assert_allclose(motion.respiratory_mm(t + breath), motion.respiratory_mm(t), atol=1e-9)


@pytest.fixture(scope="module")
def held_sim() -> ProcedureSimulator:
    sim = ProcedureSimulator(11)
    sim.place(DeliveryState(tip_sigma_mm=2.0, retraction_mm=0.0))
    return sim


def _peak_motion_times(sim: ProcedureSimulator) -> tuple[float, float]:
    """Two times with the largest difference in root position (same delivery state)."""
    t = np.linspace(0.0, 4.0, 200)
    d = sim.scene.motion.root_mm(t)
    i, j = np.unravel_index(np.argmax(np.linalg.norm(d[:, None] - d[None], axis=2)), (len(t), len(t)))
    return float(t[i]), float(t[j])


def test_anatomy_and_devices_move_together(held_sim: ProcedureSimulator) -> None:
    t1, t2 = _peak_motion_times(held_sim)
    state = held_sim.state
    kp1, _ = held_sim.scene.keypoints(t1, state)
    kp2, _ = held_sim.scene.keypoints(t2, state)
    shift = kp2 - kp1
    assert np.linalg.norm(shift[Kp.PT]) > 5.0  # a real excursion in pixels
    annulus_shift = 0.5 * (shift[Kp.AA1] + shift[Kp.AA2])
    for k in (Kp.PT, Kp.CT, Kp.CD, Kp.STJ1):  # perspective differences only (depths differ by a few cm)
        np.testing.assert_allclose(shift[k], annulus_shift, atol=0.05 * np.linalg.norm(annulus_shift) + 0.2)


def test_rendered_root_moves_with_its_keypoints(held_sim: ProcedureSimulator) -> None:
    """The rendered contrast-filled root shifts by the keypoints' shift (ground truth stays on it)."""
    t1, t2 = _peak_motion_times(held_sim)
    state = held_sim.state
    kp1, _ = held_sim.scene.keypoints(t1, state)
    kp2, _ = held_sim.scene.keypoints(t2, state)

    def contrast_layer(t_s: float) -> np.ndarray:
        filled = held_sim.scene.attenuation(t_s, state, contrast=1.0).astype(np.float64)
        return filled - held_sim.scene.attenuation(t_s, state, contrast=0.0)

    a, b = contrast_layer(t1), contrast_layer(t2)
    assert a.max() > 0.5  # the root is there
    hann = cv2.createHanningWindow(a.shape[::-1], cv2.CV_64F)
    (dx, dy), _ = cv2.phaseCorrelate(a, b, hann)
    np.testing.assert_allclose(
        [dx, dy], 0.5 * (kp2[Kp.AA1] + kp2[Kp.AA2] - kp1[Kp.AA1] - kp1[Kp.AA2]), atol=1.0
    )
