"""``tavi-perception crops``: the valve-refinement training set, cropped from rendered datasets.

Every frame of ``--data`` whose FE1 and FE2 are both labelled gives one crop of
:data:`~tavi_perception.inference.valve_crop.CROP_MM` around their midpoint, moved by a uniform random
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

from tavi_perception.inference.valve_crop import CROP_MM, crop, crop_window
from tavi_perception.keypoints import NUM_KEYPOINTS, Kp
from tavi_perception.model.datasets import DatasetError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tavi-perception crops", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, nargs="+", required=True, help="rendered dataset folders")
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--seed", type=int, default=0, help="seed of the crop offsets (default: 0)")
    p.add_argument(
        "--jitter-mm", type=float, default=5.0, help="[mm] largest crop offset per axis (default: 5)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def crop_entry(image: dict, annotation: dict, rng: np.random.Generator, jitter_mm: float):
    """(window, keypoints in the crop) of one source frame, or None when FE1/FE2 are not both labelled."""
    kps = np.asarray(annotation["keypoints"], dtype=np.float64).reshape(-1, 3)
    if len(kps) != NUM_KEYPOINTS:
        raise DatasetError(f"image {image['id']}: {len(kps)} keypoints, expected {NUM_KEYPOINTS}")
    if kps[Kp.FE1, 2] <= 0 or kps[Kp.FE2, 2] <= 0:
        return None
    mm_per_px = float(image["mm_per_px"])
    offset_px = rng.uniform(-jitter_mm, jitter_mm, 2) / mm_per_px
    window = crop_window(0.5 * (kps[Kp.FE1, :2] + kps[Kp.FE2, :2]) + offset_px, mm_per_px)
    xy = window.to_crop(kps[:, :2])
    shown = (kps[:, 2] > 0) & window.contains(xy)
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
    images, annotations, categories = [], [], None
    for folder in args.data:
        try:
            coco = json.loads((folder / "annotations.json").read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise SystemExit(f"cannot read {folder / 'annotations.json'}: {err}") from err
        categories = categories or coco["categories"]
        by_image = {a["image_id"]: a for a in coco["annotations"]}
        for image in tqdm(coco["images"], desc=f"crops of {folder}", disable=args.quiet):
            entry = (
                crop_entry(image, by_image[image["id"]], rng, args.jitter_mm)
                if image["id"] in by_image
                else None
            )
            if entry is None:
                continue
            window, kps = entry
            source = cv2.imread(str(folder / image["file_name"]), cv2.IMREAD_UNCHANGED)
            if source is None:
                raise SystemExit(f"cannot read {folder / image['file_name']}")
            image_id = len(images) + 1
            name = f"images/{image_id:06d}.png"
            cv2.imwrite(str(args.out / name), crop(source, window))
            fields = {k: v for k, v in image.items() if k not in ("id", "file_name", "width", "height")}
            images.append(
                {
                    "id": image_id,
                    "file_name": name,
                    "width": window.size_px,
                    "height": window.size_px,
                    **fields,
                    "crop_of": str(folder / image["file_name"]),
                    "crop_x0_px": window.x0_px,
                    "crop_y0_px": window.y0_px,
                }
            )
            shown = sum(1 for v in kps[2::3] if v)
            area = window.size_px**2
            annotations.append(
                {
                    "id": image_id,
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": kps,
                    "num_keypoints": shown,
                    "bbox": [0, 0, window.size_px, window.size_px],
                    "area": area,
                    "iscrowd": 0,
                }
            )
    if not images:
        raise SystemExit("no frame of --data has both frame edges labelled: nothing to crop")
    coco_out = {
        "info": {"description": "tavi_perception valve crops"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    (args.out / "annotations.json").write_text(json.dumps(coco_out))
    info = {
        "command": "tavi-perception crops " + shlex.join(argv),
        "seed": args.seed,
        "crop_mm": CROP_MM,
        "jitter_mm": args.jitter_mm,
        "sources": [str(d) for d in args.data],
        "images": len(images),
    }
    (args.out / "dataset.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote {len(images)} crops to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
