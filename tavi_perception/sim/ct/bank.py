"""A bank of C-arm views: per view, the CT's line integrals rendered once and reused for every frame.

Per view and image size (:class:`ViewLayers`): the static body; the moving tissue split into
:data:`MOVING_SLABS` depth slabs along the beam over the heart's depth, and the root's iodine into
:data:`IODINE_SLABS` over the root's. A frame then needs no ray casting: each slab is moved by one
affine warp, exact for a plane perpendicular to the beam at the slab's depth (a rigid 3D translation
``d`` of such a plane at depth ``w`` scales its image by ``w / (w + d·beam)`` about the image centre and
shifts it by ``SID (d·x, d·y) / ((w + d·beam) pixel)``); the slab's depth is the attenuation-weighted
mean depth of its content. The error of the rigid 3D motion is then that of content off that depth
within its slab: a fraction of a pixel for 10 mm of motion (bench/results/ct_render.json).

Views are cached in memory (the last :data:`MEMORY_VIEWS`) and, with ``cache_dir``, as ``.npz`` files
keyed by a hash of the view, the image size, the voxel size and :data:`BANK_VERSION`.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tavi_perception.sim.carm import CArmView, Projector
from tavi_perception.sim.ct.layers import RenderVolumes
from tavi_perception.sim.ct.raycast import cast

BANK_VERSION = 1
MOVING_SLABS = 6
IODINE_SLABS = 4
STEP_FRACTION = 0.75  # ray sample spacing / voxel size
MOTION_MARGIN_MM = 15.0  # largest root motion: slabs and moving layers reach this far beyond their extent
MEMORY_VIEWS = 8


@dataclass(frozen=True)
class ViewLayers:
    """Line integrals of one view [dimensionless attenuation], (H, W) per layer and slab."""

    static: np.ndarray  # (H, W)
    moving: np.ndarray  # (K, H, W) moving tissue minus its fill, per depth slab
    moving_depth_mm: np.ndarray  # (K,) depth of each moving slab from the source along the beam
    iodine: np.ndarray  # (J, H, W) root iodine at full fill, per depth slab
    iodine_depth_mm: np.ndarray  # (J,)
    margin_px: int  # the moving layers extend this far beyond the image (what motion brings into view)


FIELDS = ("static", "moving", "moving_depth_mm", "iodine", "iodine_depth_mm", "margin_px")


def slab_edges_mm(corners_lps: np.ndarray, projector: Projector, slabs: int) -> np.ndarray:
    """Depth edges (K + 1,) spanning a box's corners (plus the motion margin) along the beam."""
    depth = (corners_lps - projector.source_lps) @ projector.beam
    return np.linspace(depth.min() - MOTION_MARGIN_MM, depth.max() + MOTION_MARGIN_MM, slabs + 1)


def ray_block_px(spacing_mm: float, projector: Projector) -> int:
    """Pixels per ray (a power of two dividing the image side): rays about half a voxel apart at the
    isocentre, the finest detail the volume holds."""
    block = 1
    while 2 * block * projector.mm_per_px <= 0.5 * spacing_mm and projector.size_px % (2 * block) == 0:
        block *= 2
    return block


def render_view(volumes: RenderVolumes, view: CArmView, size_px: int) -> ViewLayers:
    """Ray-cast the layers of one view (seconds at 512²)."""
    proj = Projector(view, size_px)
    step = STEP_FRACTION * volumes.spacing_mm
    block = ray_block_px(volumes.spacing_mm, proj)
    static, _ = cast(
        volumes.static[None], volumes.origin_lps, volumes.spacing_mm, proj, step_mm=step, step_px=block
    )
    margin = block * math.ceil(MOTION_MARGIN_MM / proj.mm_per_px / block)
    window = (-margin, -margin, size_px + margin, size_px + margin)
    slabbed = []
    for array, box, count in (
        (volumes.moving, volumes.moving_box, MOVING_SLABS),
        (volumes.iodine, volumes.iodine_box, IODINE_SLABS),
    ):
        crop, origin = volumes.crop(array, box)
        edges = slab_edges_mm(volumes.box_corners_lps(box), proj, count)
        layer, depth = cast(
            crop[None],
            origin,
            volumes.spacing_mm,
            proj,
            step_mm=step,
            window=window,
            depth_edges_mm=edges,
            step_px=block,
        )
        slabbed += [layer[0], depth[0]]
    return ViewLayers(static[0], *slabbed, margin)


class ViewBank:
    """Layers per (view, image size), rendered on first use and cached (module docstring)."""

    def __init__(self, volumes: RenderVolumes, cache_dir: Path | None = None) -> None:
        self.volumes = volumes
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._memory: OrderedDict[str, ViewLayers] = OrderedDict()
        self.render_s = 0.0  # time spent ray casting views so far
        self.rendered_views = 0

    def key(self, view: CArmView, size_px: int) -> str:
        text = repr(
            (
                BANK_VERSION,
                MOVING_SLABS,
                IODINE_SLABS,
                STEP_FRACTION,
                self.volumes.spacing_mm,
                int(size_px),
                astuple(view),
            )
        )
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def _file(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / f"ct_view_{key}.npz"

    def layers(self, view: CArmView, size_px: int) -> ViewLayers:
        """The view's layers: from memory, from the cache directory, or rendered now."""
        key = self.key(view, size_px)
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        path = self._file(key)
        if path is not None and path.exists():
            with np.load(path) as f:
                layers = ViewLayers(*(f[k] for k in FIELDS[:-1]), int(f["margin_px"]))
        else:
            start = time.perf_counter()
            layers = render_view(self.volumes, view, size_px)
            self.render_s += time.perf_counter() - start
            self.rendered_views += 1
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp.npz")
                np.savez(tmp, **{k: getattr(layers, k) for k in FIELDS})
                tmp.replace(path)
        self._memory[key] = layers
        while len(self._memory) > MEMORY_VIEWS:
            self._memory.popitem(last=False)
        return layers

    def build(self, views: Iterable[CArmView], size_px: int, progress: bool = True) -> float:
        """Render (or load) every view now, with a progress bar; returns the seconds it took."""
        views = list(views)
        start = time.perf_counter()
        for view in tqdm(views, desc="CT view bank", unit="view", disable=not progress):
            self.layers(view, size_px)
        return time.perf_counter() - start
