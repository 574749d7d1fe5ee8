"""Tiny annotated keypoint datasets written to disk for the model and inference tests.

Frames are dark noise with one bright disc per visible keypoint; the files follow the on-disk formats
the loaders read (COCO keypoints as in docs/ARCHITECTURE.md, Supervisely ``ann``/``img`` folders).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from tavi_perception.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS


def random_frame(
    rng: np.random.Generator, size: int, dtype=np.uint8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, xy px (11, 2), visible (11,)): a disc at each visible point on a noisy background."""
    visible = rng.random(NUM_KEYPOINTS) < 0.7
    xy = rng.uniform(0.1 * size, 0.9 * size, size=(NUM_KEYPOINTS, 2))
    xy[~visible] = 0.0
    img = rng.normal(40, 5, size=(size, size))
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    for k in np.flatnonzero(visible):
        img[(xx - xy[k, 0]) ** 2 + (yy - xy[k, 1]) ** 2 <= (size / 40) ** 2] = 120 + 10 * k
    full = np.iinfo(dtype).max / 255.0
    return np.clip(img * full, 0, np.iinfo(dtype).max).astype(dtype), xy, visible


def write_coco_dataset(root: Path, frames: int, size: int = 128, seed: int = 0) -> Path:
    """A COCO keypoints dataset in ``root`` (images/*.png + annotations.json); returns ``root``."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(frames):
        img, xy, vis = random_frame(rng, size)
        name = f"frame_{i:04d}.png"
        cv2.imwrite(str(root / "images" / name), img)
        kps = np.concatenate([xy, np.where(vis, 2, 0)[:, None]], axis=1).ravel().tolist()
        images.append(
            {"id": i, "file_name": name, "width": size, "height": size, "case_id": 0, "frame_index": i}
        )
        annotations.append(
            {"id": i, "image_id": i, "category_id": 1, "keypoints": kps, "num_keypoints": int(vis.sum())}
        )
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "tavi", "keypoints": list(KEYPOINT_NAMES), "skeleton": []}],
    }
    (root / "annotations.json").write_text(json.dumps(coco))
    return root


def write_supervisely_dataset(root: Path, xy_px: np.ndarray, visible: np.ndarray, size: int = 64) -> Path:
    """One-frame Supervisely project ``root/ds/{img,ann}`` with integer point annotations."""
    (root / "ds" / "img").mkdir(parents=True, exist_ok=True)
    (root / "ds" / "ann").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "ds" / "img" / "f0.png"), np.zeros((size, size), np.uint8))
    objects = [
        {
            "classTitle": KEYPOINT_NAMES[k],
            "geometryType": "point",
            "points": {"exterior": [xy_px[k].tolist()], "interior": []},
        }
        for k in np.flatnonzero(visible)
    ]
    objects.append(
        {"classTitle": "guidewire", "geometryType": "point", "points": {"exterior": [[1, 1]], "interior": []}}
    )
    ann = {"size": {"height": size, "width": size}, "objects": objects}
    (root / "ds" / "ann" / "f0.png.json").write_text(json.dumps(ann))
    return root
