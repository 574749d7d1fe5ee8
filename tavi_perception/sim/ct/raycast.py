"""Our own ray caster: line integrals of attenuation volumes on a C-arm view's pixel grid.

Each pixel's ray (``carm.Projector.pixel_grid_rays``: from the source through the pixel centre, the
same geometry that projects the keypoints) is clipped to the volume's box and sampled at a fixed number
of equally spaced points, at most ``step_mm`` apart; the samples are trilinear (``torch`` ``grid_sample``,
several channels at once, zero outside) and ``sum(mu) * dt`` is the line integral. Optionally the
integral is split into slabs by the sample's depth along the beam (``depth_edges_mm``), which lets a
moving layer be warped per depth (see ``bank.py``).

Why our own and not diffdrr's: diffdrr's renderer needs its full dependency set (pyvista, timm,
torchvision, kornia, ...) next to our CPU torch pin, and we need the depth slabs, the exact pixel
convention of ``carm.Projector`` and windowed rendering; a 100-line caster gives all three.
"""

from __future__ import annotations

import cv2
import numpy as np

from tavi_perception.sim.carm import Projector

ROWS_PER_CHUNK = 8


def cast(
    channels: np.ndarray,
    origin_lps: np.ndarray,
    spacing_mm: float,
    projector: Projector,
    *,
    step_mm: float,
    window: tuple[int, int, int, int] | None = None,
    shift_lps: np.ndarray | None = None,
    depth_edges_mm: np.ndarray | None = None,
    step_px: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Line integrals of ``channels`` (C, nz, ny, nx) [1/mm] through the pixels of ``window``.

    ``origin_lps``: centre of voxel [0, 0, 0]; isotropic ``spacing_mm``. ``window`` (x0, y0, x1, y1):
    pixels to render (default: the whole image). ``shift_lps``: the volume moved by this (the rays are
    cast from the source moved the other way). Returns the integrals (C, h, w), or (C, K, h, w) with K
    depth slabs between ``depth_edges_mm`` (K + 1 depths from the source along the beam; samples beyond
    the outer edges count to the outer slabs), and the mean depth [mm] of each channel's (and slab's)
    content over the whole window, weighted by ``|mu|`` ((C,) or (C, K); the edge mid-depth when empty).
    ``step_px``: one ray per block of step × step pixels (the window's sides must be multiples of it),
    upsampled bilinearly; a volume of voxel ``v`` carries nothing finer than ``v / 2`` anyway.
    """
    import torch  # deferred: the stylised renderer and the CLI start without it

    vol = torch.from_numpy(np.ascontiguousarray(channels, dtype=np.float32))[None]
    n_c = vol.shape[1]
    n_xyz = np.array(channels.shape[1:][::-1], dtype=float)
    lo = np.asarray(origin_lps, dtype=float) - 0.5 * spacing_mm
    hi = lo + n_xyz * spacing_mm
    size = projector.size_px
    x0, y0, x1, y1 = window if window is not None else (0, 0, size, size)
    if (y1 - y0) % step_px or (x1 - x0) % step_px:
        raise ValueError(f"window {window} is not a multiple of step_px {step_px}")
    h, w = (y1 - y0) // step_px, (x1 - x0) // step_px
    slabs = 0 if depth_edges_mm is None else len(depth_edges_mm) - 1
    out = np.zeros((n_c, max(slabs, 1), h, w), np.float32)
    weight = np.zeros((n_c, max(slabs, 1)))
    weighted_depth = np.zeros((n_c, max(slabs, 1)))
    source = projector.source_lps - (np.zeros(3) if shift_lps is None else np.asarray(shift_lps, dtype=float))
    scale = 2.0 / ((n_xyz - 1.0) * spacing_mm)  # align_corners: -1 / +1 at the first / last voxel centre
    centre0 = np.asarray(origin_lps, dtype=float)
    for r0 in range(0, h, ROWS_PER_CHUNK):
        rows = min(ROWS_PER_CHUNK, h - r0)
        dirs = projector.pixel_grid_rays(x0, y0 + r0 * step_px, w * step_px, rows * step_px, step_px)
        safe = np.where(np.abs(dirs) > 1e-12, dirs, 1e-12)
        ta, tb = (lo - source) / safe, (hi - source) / safe
        t0 = np.maximum(np.minimum(ta, tb).max(axis=-1), 0.0)
        t1 = np.maximum(np.maximum(ta, tb).min(axis=-1), t0)
        n = int(np.ceil((t1 - t0).max() / step_mm))
        if n == 0:
            continue
        dt = (t1 - t0) / n  # (rows, w)
        t = t0[..., None] + (np.arange(n) + 0.5) * dt[..., None]  # (rows, w, n)
        pts = source + t[..., None] * dirs[:, :, None, :]
        grid = torch.from_numpy(((pts - centre0) * scale - 1.0).astype(np.float32))[None]
        samples = torch.nn.functional.grid_sample(vol, grid, mode="bilinear", align_corners=True)[0]
        samples = samples.numpy() * dt[..., None]  # (C, rows, w, n) contributions
        depth = t * (dirs @ projector.beam)[..., None]  # along the beam from the source, rising with t
        mass = np.abs(samples)
        # depth rises along each ray, so a slab is a run of samples: differences of running sums
        bounds = np.zeros((rows, w, max(slabs, 1) + 1), int)
        bounds[..., -1] = n
        if slabs > 1:
            bounds[..., 1:-1] = (depth[..., None] < depth_edges_mm[1:-1]).sum(axis=-2)
        for values, target in ((samples, None), (mass, weight), (mass * depth, weighted_depth)):
            running = np.concatenate(
                [np.zeros((*values.shape[:-1], 1), np.float32), values.cumsum(axis=-1)], -1
            )
            at = np.take_along_axis(
                running, np.broadcast_to(bounds, (n_c, rows, w, bounds.shape[-1])), axis=-1
            )
            parts = np.moveaxis(np.diff(at, axis=-1), -1, 1)  # (C, K, rows, w)
            if target is None:
                out[:, :, r0 : r0 + rows] = parts
            else:
                target += parts.sum(axis=(2, 3))
    if slabs:
        mid = np.broadcast_to(0.5 * (depth_edges_mm[1:] + depth_edges_mm[:-1]), weight.shape)
    else:
        mid = np.full(weight.shape, float(projector.view.sod_mm))
    mean_depth = np.where(weight > 0, weighted_depth / np.maximum(weight, 1e-30), mid)
    if step_px > 1:
        size_wh = (w * step_px, h * step_px)
        out = np.stack([[cv2.resize(p, size_wh, interpolation=cv2.INTER_LINEAR) for p in c] for c in out])
    return (out, mean_depth) if slabs else (out[:, 0], mean_depth[:, 0])
