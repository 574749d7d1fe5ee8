"""The CT turned into the three attenuation volumes the X-ray renderer projects, in the CT root frame.

- ``static`` [1/mm]: the body that does not move with the heart (spine, ribs, lungs, chest wall, ...),
  with the moving region filled by its surroundings (each of its voxels takes the attenuation of the
  nearest voxel outside it).
- ``moving`` [1/mm]: heart, left atrial appendage, pulmonary veins and the root with the ascending aorta
  (the dilated union of their labels), minus that fill. ``static + moving`` is the CT; moved by ``d``,
  ``static + moving(x - d)`` leaves the surroundings where the heart was and removes them where it went,
  so a rigidly moving heart slides over its surroundings without gaps or doubled tissue at its border.
- ``iodine`` [1/mm]: the aortogram's iodine at full fill in the root and ascending aorta lumen (the
  aorta label's enhanced blood, ``volume.CTVolume.lumen``, above the closed leaflets of the phantom's
  leaflet model, below :data:`ASCENDING_TOP_MM`), diluting up the aorta as in the stylised renderer.

Iodine density during an aortogram's plateau (:data:`MU_IODINE_PER_MM`): 20 ml/s of 350 mgI/ml contrast
mixing with ~83 ml/s of aortic flow (5 l/min) gives ~67 mgI/ml in the root; at ~26 HU per mgI/ml (CT,
120 kVp) that is ~1750 HU over blood, far above the CT's own ~400 HU arterial enhancement, and at the
fluoroscopy beam (~70 kVp) iodine attenuates about twice as strongly relative to water as at 120 kVp,
so μ ≈ μ_water × 1.75 × 2 ≈ 0.070 /mm over blood.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tavi_perception.sim.ct.anatomy import CTRoot, ct_landmarks
from tavi_perception.sim.ct.volume import (
    AORTA,
    ATRIAL_APPENDAGE_LEFT,
    HEART,
    MU_WATER_PER_MM,
    PULMONARY_VEIN,
    load_ct,
    mu_from_hu,
)
from tavi_perception.sim.phantom import ASCENDING_DILUTION

DEFAULT_SPACING_MM = 1.5
MOVING_LABELS = (HEART, PULMONARY_VEIN, ATRIAL_APPENDAGE_LEFT)
ASCENDING_TOP_MM = 100.0  # the moving, iodine-filled aorta ends this far above the annulus (arch)
ASCENDING_RADIUS_MM = 35.0  # ... and within this distance of the root axis (not the descending aorta)
MOVING_DILATION_MM = 3.0  # the moving region reaches this far beyond its labels (epicardial fat, wall)
IODINE_EDGE_MM = 1.0  # Gaussian sigma smoothing the iodine volume's label edges
INJECTION_MG_I_PER_ML = 350.0
INJECTION_RATE_ML_S = 20.0
AORTIC_FLOW_ML_S = 83.0
HU_PER_MG_I_PER_ML_120KVP = 26.0
IODINE_GAIN_70KVP = 2.0  # iodine/water attenuation at the fluoroscopy beam relative to 120 kVp CT
ROOT_IODINE_HU = (
    HU_PER_MG_I_PER_ML_120KVP
    * INJECTION_MG_I_PER_ML
    * INJECTION_RATE_ML_S
    / (INJECTION_RATE_ML_S + AORTIC_FLOW_ML_S)
)
MU_IODINE_PER_MM = MU_WATER_PER_MM * ROOT_IODINE_HU / 1000.0 * IODINE_GAIN_70KVP


Box = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]  # (z, y, x) index ranges, end excluded


@dataclass(frozen=True)
class RenderVolumes:
    """The three volumes (module docstring) on one isotropic grid in the CT root frame."""

    static: np.ndarray  # (nz, ny, nx) float32 [1/mm]
    moving: np.ndarray  # (nz, ny, nx) float32 [1/mm], 0 outside the moving region
    iodine: np.ndarray  # (nz, ny, nx) float32 [1/mm] at full fill
    origin_lps: np.ndarray  # (3,) centre of voxel [0, 0, 0], root frame
    spacing_mm: float
    moving_box: Box  # where ``moving`` is not 0
    iodine_box: Box  # where ``iodine`` is not 0
    root: CTRoot

    def crop(self, array: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
        """(``array`` cropped to ``box``, LPS centre of the crop's first voxel)."""
        (z0, z1), (y0, y1), (x0, x1) = box
        return array[z0:z1, y0:y1, x0:x1], self.origin_lps + np.array([x0, y0, z0]) * self.spacing_mm

    def box_corners_lps(self, box: Box) -> np.ndarray:
        """LPS centres (8, 3) of the box's corner voxels."""
        (z0, z1), (y0, y1), (x0, x1) = box
        idx = np.array([[x, y, z] for x in (x0, x1 - 1) for y in (y0, y1 - 1) for z in (z0, z1 - 1)])
        return self.origin_lps + idx * self.spacing_mm


def _box(mask: np.ndarray) -> Box:
    zz, yy, xx = np.nonzero(mask)
    return (
        (int(zz.min()), int(zz.max()) + 1),
        (int(yy.min()), int(yy.max()) + 1),
        (int(xx.min()), int(xx.max()) + 1),
    )


@functools.lru_cache(maxsize=2)
def render_volumes(spacing_mm: float = DEFAULT_SPACING_MM) -> RenderVolumes:
    """The shipped CT's render volumes at ``spacing_mm`` (cached per process)."""
    root = CTRoot(ct_landmarks())
    ct = load_ct().shifted(root.landmarks.annulus_centre_lps).resampled(spacing_mm)
    mu = mu_from_hu(ct.hu)

    aorta_idx = np.argwhere(ct.labels == AORTA)  # (N, 3) z, y, x: the only voxels needing root coordinates
    s, rho, phi = root.cylindrical(ct.centres_lps(aorta_idx))
    keep = (s > -10.0) & (s < ASCENDING_TOP_MM) & (rho < ASCENDING_RADIUS_MM)
    ascending_idx = tuple(aorta_idx[keep].T)
    moving = np.isin(ct.labels, MOVING_LABELS)
    moving[ascending_idx] = True
    moving = ndimage.binary_dilation(moving, iterations=max(1, round(MOVING_DILATION_MM / spacing_mm)))
    nearest = ndimage.distance_transform_edt(moving, return_distances=False, return_indices=True)
    fill = mu[tuple(nearest)]
    static = np.where(moving, fill, mu).astype(np.float32)
    moving_mu = np.where(moving, mu - fill, 0.0).astype(np.float32)

    s, rho, phi = s[keep], rho[keep], phi[keep]
    lobe = root.lobe(phi)
    # the phantom's leaflet model at the lumen's own radius (its wall radius with the CT's measures)
    above_leaflets = s >= root.leaflet_floor(rho / root.wall_radius(np.maximum(s, 0.0), lobe), lobe)
    dilution = 1.0 - (1.0 - ASCENDING_DILUTION) * np.clip((s - root.sinus_height - 5.0) / 65.0, 0.0, 1.0)
    iodine = np.zeros_like(static)
    in_lumen = ct.lumen[ascending_idx].astype(bool)
    iodine[ascending_idx] = np.where(above_leaflets & in_lumen, MU_IODINE_PER_MM * dilution, 0.0)
    # soften the label's 2.5-mm slice staircase (a lumen edge is not a voxel step)
    iodine = ndimage.gaussian_filter(iodine, IODINE_EDGE_MM / spacing_mm).astype(np.float32)

    return RenderVolumes(
        static, moving_mu, iodine, ct.origin_lps, float(spacing_mm), _box(moving), _box(iodine > 0), root
    )
