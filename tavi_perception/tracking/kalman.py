"""A bank of 2D constant-velocity Kalman filters, vectorised over keypoints.

Each filter has the state ``[x, y, vx, vy]`` (pixels, pixels per second), the measurement ``[x, y]``,
continuous white-noise acceleration process noise with spectral density ``q`` [px²/s³] on each axis and
an isotropic measurement noise ``r`` [px²]. With isotropic ``r``, identical ``q`` on both axes and an
isotropic initial covariance, the 4×4 covariance stays block-diagonal with the same 2×2 block
``[[p_pp, p_pv], [p_pv, p_vv]]`` for x and for y. The bank therefore stores three numbers per filter
instead of a 4×4 matrix and is *exactly* the textbook filter (``filterpy.kalman.KalmanFilter`` with
``Q_continuous_white_noise``), which ``test/test_tracking_kalman.py`` checks on the same inputs.
"""

from __future__ import annotations

import numpy as np


class CvKalmanBank:
    """``n`` independent isotropic constant-velocity filters.

    Prediction advances every filter (an idle one only grows its uncertainty); updates and restarts take
    a boolean mask. Masks are applied with zero gains rather than fancy indexing, which keeps a frame of
    eleven filters at a few microseconds of numpy calls.
    """

    def __init__(self, n: int) -> None:
        self.pos_px = np.zeros((n, 2))
        self.vel_px_s = np.zeros((n, 2))
        self.p_pp = np.zeros(n)  # position variance per axis [px²]
        self.p_pv = np.zeros(n)  # position-velocity covariance per axis [px²/s]
        self.p_vv = np.zeros(n)  # velocity variance per axis [px²/s²]

    def initialise(
        self, mask: np.ndarray, z_px: np.ndarray, r_px2: np.ndarray, vel_var_px2_s2: float
    ) -> None:
        """Start the masked filters at measurement ``z_px`` with zero velocity."""
        if not mask.any():
            return
        self.pos_px[mask] = z_px[mask]
        self.vel_px_s[mask] = 0.0
        self.p_pp[mask] = r_px2[mask]
        self.p_pv[mask] = 0.0
        self.p_vv[mask] = vel_var_px2_s2

    def predict(self, dt_s: float, q_px2_s3: float) -> None:
        """Propagate every filter by ``dt_s``: x <- F x, P <- F P F^T + Q."""
        if dt_s == 0.0:
            return
        dt2 = dt_s * dt_s
        p_pp, p_pv, p_vv = self.p_pp, self.p_pv, self.p_vv
        self.pos_px += dt_s * self.vel_px_s
        self.p_pp = p_pp + 2.0 * dt_s * p_pv + dt2 * p_vv + q_px2_s3 * dt2 * dt_s / 3.0
        self.p_pv = p_pv + dt_s * p_vv + q_px2_s3 * dt2 / 2.0
        self.p_vv = p_vv + q_px2_s3 * dt_s

    def mahalanobis_sq(self, z_px: np.ndarray, r_px2: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each measurement from its prediction (chi², 2 dof)."""
        innovation = z_px - self.pos_px
        return np.einsum("ij,ij->i", innovation, innovation) / (self.p_pp + r_px2)

    def update(self, mask: np.ndarray, z_px: np.ndarray, r_px2: np.ndarray) -> None:
        """Correct the masked filters with measurement ``z_px`` of variance ``r_px2`` per axis."""
        p_pp, p_pv, p_vv = self.p_pp, self.p_pv, self.p_vv
        s = p_pp + r_px2
        k_pos = np.where(mask, p_pp / s, 0.0)
        k_vel = np.where(mask, p_pv / s, 0.0)
        innovation = np.where(mask[:, None], z_px - self.pos_px, 0.0)
        self.pos_px += k_pos[:, None] * innovation
        self.vel_px_s += k_vel[:, None] * innovation
        self.p_pp = p_pp - k_pos * p_pp
        self.p_pv = p_pv - k_pos * p_pv
        self.p_vv = p_vv - k_vel * p_pv

    def full_covariance(self, i: int) -> np.ndarray:
        """The 4x4 covariance of filter ``i`` in ``[x, y, vx, vy]`` order (for comparison and display)."""
        block = np.array([[self.p_pp[i], self.p_pv[i]], [self.p_pv[i], self.p_vv[i]]])
        return np.kron(block, np.eye(2))
