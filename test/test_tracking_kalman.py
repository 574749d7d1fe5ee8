"""The vectorised Kalman bank is the textbook constant-velocity filter (filterpy) on the same inputs."""

from __future__ import annotations

import numpy as np
from filterpy.common import Q_continuous_white_noise
from filterpy.kalman import KalmanFilter

from tavi_perception.tracking.kalman import CvKalmanBank


def _filterpy_cv(z0: np.ndarray, r: float, vel_var: float) -> KalmanFilter:
    kf = KalmanFilter(dim_x=4, dim_z=2)  # state [x, y, vx, vy]
    kf.x = np.array([z0[0], z0[1], 0.0, 0.0])
    kf.P = np.diag([r, r, vel_var, vel_var])
    kf.H = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    return kf


def test_bank_matches_filterpy_over_irregular_steps_missing_measurements_and_varying_noise() -> None:
    rng = np.random.default_rng(7)
    n, steps, q, vel_var = 11, 60, 3.0e4, 100.0**2
    z = rng.uniform(0, 512, size=(n, 2))
    r = rng.uniform(1.0, 16.0, size=n)
    bank = CvKalmanBank(n)
    bank.initialise(np.ones(n, dtype=bool), z, r, vel_var)
    reference = [_filterpy_cv(z[i], r[i], vel_var) for i in range(n)]

    for _ in range(steps):
        dt = float(rng.uniform(0.02, 0.3))  # irregular intervals, dropped frames
        z = z + rng.normal(0, 3.0, size=(n, 2))
        r = rng.uniform(1.0, 16.0, size=n)
        present = rng.random(n) > 0.3
        bank.predict(dt, q)
        bank.update(present, z, r)
        for i, kf in enumerate(reference):
            kf.F = np.array([[1.0, 0, dt, 0], [0, 1.0, 0, dt], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
            kf.predict(
                Q=Q_continuous_white_noise(dim=2, dt=dt, spectral_density=q, block_size=2, order_by_dim=False)
            )
            if present[i]:
                kf.update(z[i], R=np.eye(2) * r[i])

    for i, kf in enumerate(reference):
        np.testing.assert_allclose(bank.pos_px[i], kf.x[:2], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(bank.vel_px_s[i], kf.x[2:], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(bank.full_covariance(i), kf.P, rtol=1e-9, atol=1e-9)


def test_mahalanobis_distance_matches_filterpy() -> None:
    bank = CvKalmanBank(1)
    z0 = np.array([[100.0, 200.0]])
    bank.initialise(np.array([True]), z0, np.array([4.0]), 50.0**2)
    bank.predict(0.1, 1.0e4)
    kf = _filterpy_cv(z0[0], 4.0, 50.0**2)
    kf.F = np.array([[1.0, 0, 0.1, 0], [0, 1.0, 0, 0.1], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    kf.predict(
        Q=Q_continuous_white_noise(dim=2, dt=0.1, spectral_density=1.0e4, block_size=2, order_by_dim=False)
    )
    z = np.array([[110.0, 195.0]])
    kf.update(z[0], R=np.eye(2) * 4.0)
    np.testing.assert_allclose(bank.mahalanobis_sq(z, np.array([4.0]))[0], kf.mahalanobis**2, rtol=1e-9)


def test_masked_out_filters_are_not_corrected() -> None:
    bank = CvKalmanBank(2)
    bank.initialise(np.array([True, True]), np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1.0, 1.0]), 1.0)
    bank.update(np.array([True, False]), np.array([[0.0, 0.0], [np.nan, np.nan]]), np.array([1.0, 1.0]))
    np.testing.assert_array_equal(bank.pos_px[1], [3.0, 4.0])
    assert bank.p_pp[1] == 1.0
    assert bank.p_pp[0] == 0.5
