"""Where the shaft rubs: the vessel path's curvature against the rail's arc length ``sigma``.

The shaft's friction concentrates in the bends (:func:`tavi_perception.physics.model.layout`). The
stylised scene's path is its rail (straight through the root, one raised-cosine bend over the arch); the
CT scene has the catheter route through the CT's aorta (``CTRoot.aorta_route``: up the descending aorta,
over the arch, down the ascending aorta to the STJ), whose bends are the patient's. Either way the shaft
still moves along the rail for rendering; only where it rubs comes from the path.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from tavi_perception.sim.delivery import DeliveryRail

TURNING_PER_MM = 0.01  # [1/mm] a route turning faster than this (radius < 100 mm) is a bend
SMOOTHING_POINTS = 9  # moving average over the route's points (2 mm apart in the CT) before its curvature:
# the route steps from slice to slice, which adds turns that are not the aorta's (420 deg in all unsmoothed,
# 299 deg smoothed, for an arch of about 180 deg between two gently curved limbs)


class FrictionPath(Protocol):
    """The path's bends: curvature [1/mm] at arc lengths along the rail, and a typical bend radius."""

    bend_radius_mm: float

    def curvature_per_mm(self, sigma: np.ndarray) -> np.ndarray: ...


class RailPath:
    """The stylised scene's path: the rail itself."""

    def __init__(self, rail: DeliveryRail) -> None:
        self._rail = rail
        self.bend_radius_mm = rail.bend_length_mm / max(rail.bend_rad, 1e-9)

    def curvature_per_mm(self, sigma: np.ndarray) -> np.ndarray:
        return self._rail.curvature_per_mm(sigma)


class RoutePath:
    """A catheter route (N, 3) [mm] from the groin to the root, joined to the rail where it ends.

    The route's end is placed at its height above the rail's annulus crossing (along the rail's axis);
    proximal of it the arc length runs back along the route; between its end and the annulus the path
    is straight, and beyond its start too.
    """

    def __init__(self, route_mm: np.ndarray, rail: DeliveryRail) -> None:
        pts = _smoothed(np.asarray(route_mm, dtype=float), SMOOTHING_POINTS)
        step = np.diff(pts, axis=0)
        length = np.linalg.norm(step, axis=1)
        direction = step / length[:, None]
        turn = np.arccos(np.clip(np.sum(direction[1:] * direction[:-1], axis=1), -1.0, 1.0))
        kappa = turn / (0.5 * (length[1:] + length[:-1]))  # at the inner nodes
        from_end = np.concatenate(([0.0], np.cumsum(length[::-1])))[::-1]  # arc length to the route's end
        end_height_mm = float((pts[-1] - rail.origin) @ -rail.axis)
        sigma = -(end_height_mm + from_end[1:-1])
        self._sigma, self._kappa = sigma, kappa  # sigma ascends from the groin towards the root
        bend = kappa > TURNING_PER_MM
        seg = 0.5 * (length[1:] + length[:-1])
        self.bend_radius_mm = (
            float(seg[bend].sum() / turn[bend].sum()) if bend.any() else 1.0 / TURNING_PER_MM
        )

    def curvature_per_mm(self, sigma: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(sigma, dtype=float), self._sigma, self._kappa, left=0.0, right=0.0)


def _smoothed(points: np.ndarray, window: int) -> np.ndarray:
    """Moving average of ``points`` (N, 3) over ``window`` points, the ends held."""
    padded = np.pad(points, ((window // 2, window // 2), (0, 0)), mode="edge")
    kernel = np.ones(window) / window
    return np.column_stack([np.convolve(padded[:, i], kernel, mode="valid") for i in range(points.shape[1])])


def friction_path(scene: object) -> FrictionPath:
    """The scene's path: the CT's aorta route when the scene's root has one, else the rail."""
    rail = scene.delivery.rail  # type: ignore[attr-defined]
    route = getattr(scene.root, "aorta_route", None)  # type: ignore[attr-defined]
    return RailPath(rail) if route is None else RoutePath(route, rail)
