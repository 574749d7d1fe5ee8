"""``tavi-perception crops``: a refinement's training set, cropped from rendered datasets.

Every frame of ``--data`` whose ``--target`` points (:mod:`tavi_perception.inference.refinement`: FE1
and FE2 for the valve, AA1, AA2, STJ1 and STJ2 for the root) are all labelled gives one crop of the
target's size around their mean, moved by a uniform random
offset of up to ``--jitter-mm`` per axis (the first stage's error at inference), at full resolution.
Labels are mapped into the crop; a point outside it is not visible. Writes ``OUT/images/*.png`` (the
source's bit depth), ``OUT/annotations.json`` (COCO keypoints, the source's image fields plus
``crop_of`` and ``crop_x0_px``/``crop_y0_px``) and ``OUT/dataset.json`` (command, seed, counts). The same
arguments give the same files.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from tavi_perception.inference.refinement import TARGETS, VALVE, CropTarget, crop, crop_window
from tavi_perception.keypoints import KEYPOINT_NAMES
from tavi_perception.model.datasets import DatasetError, Sample, load_coco_keypoints, read_image


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tavi-perception crops", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, nargs="+", required=True, help="rendered dataset folders")
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--seed", type=int, default=0, help="seed of the crop offsets (default: 0)")
    p.add_argument(
        "--jitter-mm", type=float, default=5.0, help="[mm] largest crop offset per axis (default: 5)"
    )
    p.add_argument(
        "--target",
        choices=sorted(TARGETS),
        default=VALVE.name,
        help="valve: 44 mm around FE1/FE2; root: 56 mm around AA1, AA2, STJ1, STJ2 (default: valve)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def crop_entry(sample: Sample, rng: np.random.Generator, jitter_mm: float, target: CropTarget = VALVE):
    """(window, COCO keypoints in the crop) of a source frame, or None unless ``target``'s points are all
    labelled.

    Raises ``DatasetError`` for a frame without ``mm_per_px``."""
    points = list(target.points)
    if not sample.visible[points].all():
        return None
    if not sample.meta.get("mm_per_px"):  # the crop is sized in millimetres
        raise DatasetError(f"{sample.image_path}: no mm_per_px in its image entry, so no crop size")
    mm_per_px = float(sample.meta["mm_per_px"])
    offset_px = rng.uniform(-jitter_mm, jitter_mm, 2) / mm_per_px
    window = crop_window(sample.xy_px[points].mean(axis=0) + offset_px, mm_per_px, target.crop_mm)
    xy = window.to_crop(sample.xy_px)
    shown = sample.visible & window.contains(xy)
    out: list[float] = []
    for (x, y), v in zip(xy, shown, strict=True):
        out += [round(float(x), 2), round(float(y), 2), 2] if v else [0.0, 0.0, 0]
    return window, out


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.jitter_mm < 0.0:
        raise SystemExit(f"--jitter-mm must be >= 0, got {args.jitter_mm}")
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    images, annotations = [], []
    for folder in args.data:
        try:
            samples = load_coco_keypoints(folder / "annotations.json")
        except DatasetError as err:
            raise SystemExit(str(err)) from err
        for sample in tqdm(samples, desc=f"crops of {folder}", disable=args.quiet):
            try:
                entry = crop_entry(sample, rng, args.jitter_mm, TARGETS[args.target])
            except DatasetError as err:
                raise SystemExit(f"tavi-perception crops: {err}") from err
            if entry is None:
                continue
            window, kps = entry
            try:
                source = read_image(sample.image_path)
            except DatasetError as err:
                raise SystemExit(str(err)) from err
            image_id = len(images) + 1
            name = f"images/{image_id:06d}.png"
            cv2.imwrite(str(args.out / name), crop(source, window))
            images.append(
                {
                    "id": image_id,
                    "file_name": name,
                    "width": window.size_px,
                    "height": window.size_px,
                    **sample.meta,
                    "crop_of": str(sample.image_path),
                    "crop_x0_px": window.x0_px,
                    "crop_y0_px": window.y0_px,
                }
            )
            annotations.append(
                {
                    "id": image_id,
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": kps,
                    "num_keypoints": sum(1 for v in kps[2::3] if v),
                    "bbox": [0, 0, window.size_px, window.size_px],
                    "area": window.size_px**2,
                    "iscrowd": 0,
                }
            )
    if not images:
        raise SystemExit(
            f"no frame of --data has all of the {args.target}'s points labelled: nothing to crop"
        )
    coco_out = {
        "info": {"description": "tavi_perception valve crops"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "tavi", "keypoints": list(KEYPOINT_NAMES)}],
    }
    (args.out / "annotations.json").write_text(json.dumps(coco_out))
    info = {
        "command": "tavi-perception crops " + shlex.join(argv),
        "seed": args.seed,
        "target": args.target,
        "crop_mm": TARGETS[args.target].crop_mm,
        "jitter_mm": args.jitter_mm,
        "sources": [str(d) for d in args.data],
        "images": len(images),
    }
    (args.out / "dataset.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote {len(images)} crops to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
