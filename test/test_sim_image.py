"""X-ray image formation: formats, display polarity (dense = dark), contrast, dose noise, determinism."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from tavi_perception.keypoints import Kp
from tavi_perception.sim import DeliveryState, ProcedureSimulator, sample_case
from tavi_perception.sim.simulator import noise_seed


@pytest.fixture(scope="module")
def sim() -> ProcedureSimulator:
    return ProcedureSimulator(4)


def test_output_size_and_bit_depth() -> None:
    small = ProcedureSimulator(1, image_size=256, bit_depth=8).step().image
    deep = ProcedureSimulator(1, image_size=1024, bit_depth=16).step().image
    assert small.shape == (256, 256) and small.dtype == np.uint8
    assert deep.shape == (1024, 1024) and deep.dtype == np.uint16
    assert deep.max() > 255  # uses the 16-bit range
    with pytest.raises(ValueError, match="bit depth"):
        ProcedureSimulator(1, bit_depth=12)


def test_same_mm_per_px_scale_at_every_size() -> None:
    a = ProcedureSimulator(2, image_size=512)
    b = ProcedureSimulator(2, image_size=1024)
    assert a.mm_per_px == pytest.approx(2 * b.mm_per_px)
    np.testing.assert_allclose(b.step().keypoints_px, 2 * a.step().keypoints_px, atol=1e-9)


def _patch(image: np.ndarray, xy: np.ndarray, half: int = 1) -> float:
    x, y = np.round(xy - 0.5).astype(int)
    return float(image[y - half : y + half + 1, x - half : x + half + 1].mean())


def test_radiopaque_devices_are_dark_on_grey(sim: ProcedureSimulator) -> None:
    frame = sim.frame_at(2.0)
    image = frame.image
    background = float(np.median(image))
    assert 60 < background < 200  # a grey body background
    assert _patch(image, frame.keypoints_px[Kp.CD]) < background - 50  # marker band
    assert _patch(image, frame.keypoints_px[Kp.CP]) < background - 20  # inner-shaft anchor


def test_contrast_darkens_the_root(sim: ProcedureSimulator) -> None:
    state = DeliveryState(-20.0, 0.0)  # delivery system out of the root
    t = 1.0
    empty = sim.scene.render(t, state, 0.0, noise_seed(sim.case.seed, t))
    full = sim.scene.render(t, state, 1.0, noise_seed(sim.case.seed, t))
    kp, _ = sim.scene.keypoints(t, state)
    stj_mid = 0.5 * (kp[Kp.STJ1] + kp[Kp.STJ2])
    annulus_mid = 0.5 * (kp[Kp.AA1] + kp[Kp.AA2])
    sinus = 0.5 * (stj_mid + annulus_mid)
    assert _patch(full, sinus, 3) < _patch(empty, sinus, 3) - 40
    layer = sim.scene.attenuation(t, state, 1.0).copy() - sim.scene.attenuation(t, state, 0.0)
    far = cv2.dilate((layer > 0).astype(np.uint8), np.ones((21, 21), np.uint8)) == 0
    assert far.sum() > 10_000
    assert np.abs(full.astype(int) - empty.astype(int))[far].max() <= 1  # nothing changes away from it


def _noise_level(image: np.ndarray) -> float:
    residual = image.astype(np.float32) - cv2.GaussianBlur(image.astype(np.float32), (0, 0), 3.0)
    return float(np.median(np.abs(residual)))


def test_quantum_noise_grows_as_the_dose_drops() -> None:
    case = sample_case(10)
    low = dataclasses.replace(case, imaging=dataclasses.replace(case.imaging, photons_per_px=30.0))
    high = dataclasses.replace(case, imaging=dataclasses.replace(case.imaging, photons_per_px=600.0))
    noisy = _noise_level(ProcedureSimulator(low).step().image)
    clean = _noise_level(ProcedureSimulator(high).step().image)
    assert noisy > 2.0 * clean


def test_same_seed_gives_the_same_frames() -> None:
    a, b = ProcedureSimulator(31), ProcedureSimulator(31)
    for _ in range(3):
        fa, fb = a.step(), b.step()
        np.testing.assert_array_equal(fa.image, fb.image)
        np.testing.assert_array_equal(fa.keypoints_px, fb.keypoints_px)
        assert fa.truth.as_dict() == fb.truth.as_dict()


def test_different_seeds_give_different_cases() -> None:
    a, b = ProcedureSimulator(31).step(), ProcedureSimulator(32).step()
    assert not np.array_equal(a.image, b.image)
    assert np.abs(a.keypoints_px - b.keypoints_px).max() > 5.0


def test_noise_differs_between_frames() -> None:
    sim = ProcedureSimulator(14)
    sim.place(DeliveryState(0.0, 0.0))
    t = 0.0
    a = sim.scene.render(t, sim.state, 0.0, noise_seed(sim.case.seed, t))
    b = sim.scene.render(t, sim.state, 0.0, noise_seed(sim.case.seed, t + 0.1))
    assert not np.array_equal(a, b)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 6  # only noise differs


def test_stepping_and_rendering_at_a_time_agree() -> None:
    stepped = ProcedureSimulator(8, fps=7.5)
    frames = [stepped.step() for _ in range(4)]
    direct = ProcedureSimulator(8, fps=7.5)
    for k, frame in enumerate(frames):
        again = direct.frame_at(k / 7.5, frame_index=k)
        np.testing.assert_array_equal(frame.image, again.image)
        assert frame.t_s == pytest.approx(k / 7.5) and frame.phase == again.phase
