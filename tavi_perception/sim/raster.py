"""Line integrals of attenuation on the image grid: analytic chords, ray marching and projected tubes.

Everything adds ``mu * chord_mm`` (dimensionless attenuation) into a float32 map ``att`` of the image size.

Tubes (catheters, wires, vessels, ribs) are drawn from their projected centrelines: the chord through a
cylinder of radius R at distance rho from its axis is ``2 sqrt(R² - rho²)`` (hollow tubes subtract the
lumen). The radial profile is laid down as nested OpenCV polylines from the widest (outer rim value) to
the narrowest (axis value) into a scratch window, which is then added to ``att``, so crossing tubes add up.
Tubes thinner than a pixel become one-pixel lines carrying the same cross-section area, so thin wires keep
their integrated attenuation at every image size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

SHIFT = 3  # OpenCV sub-pixel bits for drawing
_SCALE = float(1 << SHIFT)
MAX_LAYERS = 6


def tube_chord_mm(x: np.ndarray, radius_mm: float, wall_fraction: float = 1.0) -> np.ndarray:
    """Chord [mm] through a tube at relative distance ``x = rho / R`` from its axis.

    ``wall_fraction`` 1 is a solid rod; smaller values leave an empty lumen of radius (1 - w) R.
    """
    x2 = np.clip(np.asarray(x, dtype=float), 0.0, 1.0) ** 2
    outer = np.sqrt(np.maximum(1.0 - x2, 0.0))
    inner = np.sqrt(np.maximum((1.0 - wall_fraction) ** 2 - x2, 0.0))
    return 2.0 * radius_mm * (outer - inner)


def _to_fixed(pts_px: np.ndarray, x0: int, y0: int) -> np.ndarray:
    shifted = (np.asarray(pts_px, dtype=float) - (x0 + 0.5, y0 + 0.5)) * _SCALE
    return np.round(shifted).astype(np.int32).reshape(-1, 1, 2)


def _window(shape: tuple[int, int], pts_px: np.ndarray, margin: float) -> tuple[int, int, int, int] | None:
    """Integer window (x0, y0, x1, y1) around points, clipped to the image; None when outside."""
    h, w = shape
    lo = np.floor(pts_px.min(axis=0) - margin).astype(int)
    hi = np.ceil(pts_px.max(axis=0) + margin).astype(int) + 1
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), w), min(int(hi[1]), h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _layers(radius_px: float) -> list[tuple[int, float]]:
    """(line thickness px, representative relative radius) from the outer rim inwards."""
    k = int(min(MAX_LAYERS, max(1, math.ceil(radius_px))))
    out = []
    for i in range(k):
        outer, inner = 1.0 - i / k, 1.0 - (i + 1) / k
        out.append((max(1, round(2.0 * radius_px * outer)), 0.5 * (outer + inner)))
    return out


class Rasteriser:
    """Adds projected tubes, bands and wire lines into a line-integral map, reusing one scratch buffer."""

    def __init__(self, size_px: int) -> None:
        self.size_px = size_px
        self._scratch = np.zeros((size_px, size_px), np.float32)

    def _scratch_window(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        s = self._scratch[y0:y1, x0:x1]
        s.fill(0.0)
        return s

    def tube(
        self,
        att: np.ndarray,
        pts_px: np.ndarray,
        radius_px: float,
        radius_mm: float,
        mu_per_mm: float,
        wall_fraction: float = 1.0,
        closed: bool = False,
    ) -> None:
        """Add a tube along the projected centreline ``pts_px`` (N, 2)."""
        pts = np.asarray(pts_px, dtype=float)
        if len(pts) < 2 or mu_per_mm == 0.0:
            return
        win = _window(att.shape, pts, radius_px + 2.0)
        if win is None:
            return
        x0, y0, x1, y1 = win
        s = self._scratch_window(x0, y0, x1, y1)
        fixed = _to_fixed(pts, x0, y0)
        if radius_px < 1.0:
            area_mm2 = math.pi * radius_mm**2 * (1.0 - (1.0 - wall_fraction) ** 2)
            mm_per_px = radius_mm / max(radius_px, 1e-6)
            value = mu_per_mm * area_mm2 / mm_per_px
            cv2.polylines(s, [fixed], closed, float(value), 1, cv2.LINE_8, SHIFT)
        else:
            layers = _layers(radius_px)
            values = mu_per_mm * tube_chord_mm(np.array([x for _, x in layers]), radius_mm, wall_fraction)
            for (thickness, _), value in zip(layers, values, strict=True):
                cv2.polylines(s, [fixed], closed, float(value), thickness, cv2.LINE_8, SHIFT)
        att[y0:y1, x0:x1] += s

    def lines(self, att: np.ndarray, polylines_px: Sequence[np.ndarray], value: float, closed: bool) -> None:
        """Add one-pixel lines (stent struts): crossings within one call do not add up."""
        if not polylines_px or value == 0.0:
            return
        allpts = np.concatenate([np.asarray(p, dtype=float) for p in polylines_px])
        win = _window(att.shape, allpts, 2.0)
        if win is None:
            return
        x0, y0, x1, y1 = win
        s = self._scratch_window(x0, y0, x1, y1)
        cv2.polylines(
            s, [_to_fixed(p, x0, y0) for p in polylines_px], closed, float(value), 1, cv2.LINE_8, SHIFT
        )
        att[y0:y1, x0:x1] += s

    def band(
        self,
        att: np.ndarray,
        centre_px: np.ndarray,
        along_px: np.ndarray,
        across_px: np.ndarray,
        radius_mm: float,
        mu_per_mm: float,
        wall_fraction: float = 1.0,
    ) -> None:
        """Add a short straight cylinder seen side-on, with flat ends (marker band, anchor).

        ``along_px``: half-length vector along the axis; ``across_px``: radius vector across it (pixels).
        """
        c = np.asarray(centre_px, dtype=float)
        a = np.asarray(along_px, dtype=float)
        b = np.asarray(across_px, dtype=float)
        radius_px = float(np.hypot(*b))
        corners = np.array([c - a - b, c + a - b, c + a + b, c - a + b])
        win = _window(att.shape, corners, 2.0)
        if win is None or radius_px < 1e-6:
            return
        x0, y0, x1, y1 = win
        s = self._scratch_window(x0, y0, x1, y1)
        layers = _layers(radius_px)
        values = mu_per_mm * tube_chord_mm(np.array([x for _, x in layers]), radius_mm, wall_fraction)
        for (thickness, _), value in zip(layers, values, strict=True):
            half = b * min(1.0, 0.5 * thickness / radius_px)
            quad = np.array([c - a - half, c + a - half, c + a + half, c - a + half])
            cv2.fillConvexPoly(s, _to_fixed(quad, x0, y0), float(value), cv2.LINE_8, SHIFT)
        att[y0:y1, x0:x1] += s


def ellipsoid_chords(
    origin: np.ndarray, dirs: np.ndarray, centre: np.ndarray, axes: np.ndarray, semi: np.ndarray
) -> np.ndarray:
    """Chord lengths [mm] of rays (origin, unit dirs (..., 3)) through an ellipsoid."""
    m = axes.T / semi  # maps a world offset to unit-sphere coordinates
    o = (np.asarray(origin) - centre) @ m
    d = dirs @ m
    a = np.einsum("...i,...i->...", d, d)
    b = d @ o
    c = o @ o - 1.0
    disc = b * b - a * c
    return np.where(disc > 0, 2.0 * np.sqrt(np.maximum(disc, 0.0)) / a, 0.0)


def elliptic_cylinder_interval(
    origin: np.ndarray, dirs: np.ndarray, centre_xy: tuple[float, float], semi_xy: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameters (t0, t1) inside an infinite elliptic cylinder along z (t0 = t1 when missed)."""
    ox = (origin[0] - centre_xy[0]) / semi_xy[0]
    oy = (origin[1] - centre_xy[1]) / semi_xy[1]
    dx, dy = dirs[..., 0] / semi_xy[0], dirs[..., 1] / semi_xy[1]
    a = dx * dx + dy * dy
    b = dx * ox + dy * oy
    c = ox * ox + oy * oy - 1.0
    disc = np.maximum(b * b - a * c, 0.0)
    root = np.sqrt(disc)
    safe_a = np.where(a > 1e-12, a, 1.0)
    t0 = np.where(a > 1e-12, (-b - root) / safe_a, 0.0)
    t1 = np.where(a > 1e-12, (-b + root) / safe_a, 0.0)
    return t0, np.maximum(t1, t0)


def capped_cylinder_chords(
    origin: np.ndarray,
    dirs: np.ndarray,
    centre_xy: tuple[float, float],
    semi_xy: tuple[float, float],
    z0: float,
    z1: float,
) -> np.ndarray:
    """Chord lengths [mm] through an elliptic cylinder along z cut at z0 and z1."""
    t0, t1 = elliptic_cylinder_interval(origin, dirs, centre_xy, semi_xy)
    dz = dirs[..., 2]
    safe = np.where(np.abs(dz) > 1e-12, dz, 1e-12)
    ta, tb = (z0 - origin[2]) / safe, (z1 - origin[2]) / safe
    lo, hi = np.minimum(ta, tb), np.maximum(ta, tb)
    return np.maximum(np.minimum(t1, hi) - np.maximum(t0, lo), 0.0)


def axis_cylinder_interval(
    origin: np.ndarray,
    dirs: np.ndarray,
    base: np.ndarray,
    axis: np.ndarray,
    radius: float,
    s0: float,
    s1: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameters (t0, t1) inside a finite cylinder about ``axis`` from ``base`` (heights s0..s1)."""
    o = np.asarray(origin) - base
    o_par = o @ axis
    o_perp = o - o_par * axis
    d_par = dirs @ axis
    d_perp = dirs - d_par[..., None] * axis
    a = np.einsum("...i,...i->...", d_perp, d_perp)
    b = d_perp @ o_perp
    c = o_perp @ o_perp - radius * radius
    disc = np.maximum(b * b - a * c, 0.0)
    root = np.sqrt(disc)
    hit = (b * b - a * c) > 0
    safe_a = np.where(a > 1e-12, a, 1.0)
    t0 = (-b - root) / safe_a
    t1 = (-b + root) / safe_a
    safe = np.where(np.abs(d_par) > 1e-12, d_par, 1e-12)
    ta, tb = (s0 - o_par) / safe, (s1 - o_par) / safe
    t0 = np.maximum(t0, np.minimum(ta, tb))
    t1 = np.minimum(t1, np.maximum(ta, tb))
    t1 = np.where(hit, np.maximum(t1, t0), t0)
    return t0, t1


def march_chords(
    origin: np.ndarray,
    dirs: np.ndarray,
    t0: np.ndarray,
    t1: np.ndarray,
    density: Callable[[np.ndarray], np.ndarray],
    samples: int,
    chunk: int = 2048,
) -> np.ndarray:
    """Integral of ``density`` (bool inside/outside, or a relative density) along each ray between t0
    and t1 [mm], by midpoint sampling."""
    flat_d = dirs.reshape(-1, 3)
    a, b = t0.reshape(-1), t1.reshape(-1)
    out = np.zeros(len(flat_d))
    frac = (np.arange(samples) + 0.5) / samples
    active = np.flatnonzero(b > a)
    for start in range(0, len(active), chunk):
        idx = active[start : start + chunk]
        ts = a[idx, None] + (b - a)[idx, None] * frac  # (n, samples)
        pts = origin + ts[..., None] * flat_d[idx, None, :]
        out[idx] = density(pts).mean(axis=1) * (b - a)[idx]
    return out.reshape(t0.shape)
