"""``tavi-perception sim-montage``: a PNG of simulator renders across C-arm views and procedure moments,
each next to a copy with its ground-truth keypoints drawn (for a person to check the realism and that the
truth sits on the structures).

Rows: one case per C-arm view (LAO-cranial, RAO-caudal, AP, and an off-S-curve view). Columns: an
aortogram during positioning, a contrast-free moment (only pigtail, catheter and wire visible), and the
capsule retracting with the frame edges out. Drawn: visible keypoints only, coloured by group
(anatomical cyan, instrumental yellow, contour magenta), the AA1-AA2 line while it is visible.
``--renderer ct`` renders the same case seeds and primary angles from the chest CT (docs/ct_renderer.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from tavi_perception.keypoints import KEYPOINT_GROUP, KEYPOINT_NAMES, Group, Kp
from tavi_perception.sim.ct.simulator import add_renderer_argument, create_simulator, simulation_case
from tavi_perception.sim.simulator import ProcedureSimulator, SimFrame

# (label, case seed, LAO pin, CRAN pin): CRAN None follows the case's S-curve (coplanar view)
VIEWS: tuple[tuple[str, int, float, float | None], ...] = (
    ("LAO-cranial", 101, 22.0, None),
    ("RAO-caudal", 202, -22.0, None),
    ("AP", 303, 0.0, None),
    ("off S-curve", 404, 12.0, -20.0),
)
GROUP_COLOURS = {
    Group.ANATOMICAL: (255, 255, 0),
    Group.INSTRUMENTAL: (0, 230, 255),
    Group.CONTOUR: (255, 0, 255),
}
MOMENTS: tuple[tuple[str, Callable[[ProcedureSimulator, float], bool]], ...] = (
    ("aortogram", lambda s, t: s.scenario.phase_at(t) == "positioning" and s.contrast.fill(t) >= 0.95),
    ("no contrast", lambda s, t: s.scenario.phase_at(t) == "positioning" and s.contrast.fill(t) == 0.0),
    ("deployment", lambda s, t: 0.3 <= _fraction(s, t) <= 0.55 and s.contrast.fill(t) == 0.0),
)


def _fraction(sim: ProcedureSimulator, t_s: float) -> float:
    state = sim.scenario.state_at(t_s, sim.limits, sim.case.devices.max_retraction_mm)
    return state.retraction_mm / sim.case.devices.frame_height_mm


def find_frame(sim: ProcedureSimulator, wanted: Callable[[ProcedureSimulator, float], bool]) -> SimFrame:
    """The frame at the first time of the timeline (0.1 s grid) at which ``wanted`` holds."""
    for t in np.arange(0.0, sim.scenario.duration_s, 0.1):
        if wanted(sim, float(t)):
            return sim.frame_at(float(t))
    raise RuntimeError(f"case {sim.case.seed}: no frame for the requested moment")


def annotate(image: np.ndarray, frame: SimFrame, scale: float) -> np.ndarray:
    """A BGR copy of ``image`` (already scaled by ``scale``) with the visible truth drawn."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    kp = frame.keypoints_px * scale
    if frame.visible[Kp.AA1] and frame.visible[Kp.AA2]:
        a, b = (tuple(round(v) for v in kp[i]) for i in (Kp.AA1, Kp.AA2))
        cv2.line(out, a, b, GROUP_COLOURS[Group.ANATOMICAL], 1, cv2.LINE_AA)
    for i, (x, y) in enumerate(kp):
        if not frame.visible[i]:
            continue
        colour = GROUP_COLOURS[KEYPOINT_GROUP[i]]
        centre = (round(x), round(y))
        cv2.circle(out, centre, 3, colour, 1, cv2.LINE_AA)
        cv2.putText(
            out,
            KEYPOINT_NAMES[i],
            (centre[0] + 4, centre[1] - 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.33,
            colour,
            1,
            cv2.LINE_AA,
        )
    return out


def _label(tile: np.ndarray, text: str) -> None:
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.42, 1)
    cv2.rectangle(tile, (2, 2), (8 + w, 8 + h + base), (0, 0, 0), cv2.FILLED)
    cv2.putText(tile, text, (5, 5 + h), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)


def montage(size_px: int = 512, tile_px: int = 320, renderer: str = "stylised") -> np.ndarray:
    """The montage as a BGR image (``renderer``: ``stylised`` or ``ct``, the same cases and views)."""
    rows = []
    for view_label, seed, lao, cran in VIEWS:
        case = simulation_case(renderer, seed, lao_deg=lao, cran_deg=cran)
        sim = create_simulator(renderer, case, image_size=size_px)
        view = sim.case.imaging.view
        tiles = []
        for moment, wanted in MOMENTS:
            frame = find_frame(sim, wanted)
            small = cv2.resize(frame.image, (tile_px, tile_px), interpolation=cv2.INTER_AREA)
            raw = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
            _label(raw, f"{view_label} LAO {view.lao_deg:+.0f} CRAN {view.cran_deg:+.0f}: {moment}")
            marked = annotate(small, frame, tile_px / size_px)
            _label(marked, f"truth  t={frame.t_s:.1f}s  tip depth {frame.truth.tip_depth_mm:+.1f} mm")
            tiles += [raw, marked]
        rows.append(np.hstack(tiles))
    return np.vstack(rows)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="tavi-perception sim-montage", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("docs/sim_montage.png"), help="PNG to write")
    p.add_argument("--size", type=int, default=512, help="render size [px] (default 512)")
    p.add_argument("--tile", type=int, default=320, help="tile size in the montage [px] (default 320)")
    add_renderer_argument(p)
    args = p.parse_args(argv)
    image = montage(args.size, args.tile, args.renderer)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), image, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        print(f"sim-montage: cannot write {args.out}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
