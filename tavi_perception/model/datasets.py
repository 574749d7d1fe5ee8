"""Annotated frames from disk: the simulator's COCO keypoints datasets, other COCO files, Supervisely.

Every loader returns :class:`Sample` records in the schema order of ``tavi_perception.keypoints``
(coordinates in image pixels, corner origin). Keypoint names are matched to the schema by name
(case-insensitive), so files with another order or a subset of the points load correctly.

Formats:
- COCO keypoints (``docs/ARCHITECTURE.md``): ``DIR/annotations.json`` + images; ``file_name`` is looked up
  relative to the JSON's folder, then in its ``images/`` sub-folder. ``v > 0`` counts as present (COCO's
  v = 1, "labelled but occluded", still has a labelled position). Images without annotation have no
  visible points; more than one annotation per image is an error (one patient view per frame).
- Supervisely: ``ROOT/<dataset>/ann/<image name>.json`` beside ``ROOT/<dataset>/img/<image name>``;
  point objects whose ``classTitle`` is a keypoint name, position ``points.exterior[0]`` = [column, row].
  Supervisely stores integer pixel indices, so the point is placed at that pixel's centre (+0.5).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from tavi_perception.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS

LOG = logging.getLogger(__name__)
_INDEX = {name.upper(): i for i, name in enumerate(KEYPOINT_NAMES)}


class DatasetError(ValueError):
    """A dataset on disk that cannot be read as annotated keypoint frames."""


@dataclass(frozen=True)
class Sample:
    image_path: Path
    xy_px: np.ndarray  # (11, 2) float64, image pixels; zeros where not visible
    visible: np.ndarray  # (11,) bool
    width: int  # [px] of the annotated image
    height: int
    meta: dict = field(default_factory=dict)  # extra per-frame fields (case_id, phase, ...)


def read_image(path: str | Path) -> np.ndarray:
    """A frame as a 2-D array, keeping its bit depth (uint8 or uint16); colour files are made grey."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"cannot read image {path}")
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
    return image


def _schema_index(name: str) -> int | None:
    return _INDEX.get(str(name).strip().upper())


def load_coco_keypoints(json_path: str | Path) -> list[Sample]:
    """Samples of a COCO keypoints file (first category with keypoints defines the names)."""
    json_path = Path(json_path)
    try:
        coco = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(f"cannot read COCO file {json_path}: {err}") from err
    categories = [c for c in coco.get("categories", []) if c.get("keypoints")]
    if not categories or "images" not in coco:
        raise DatasetError(f"{json_path}: not a COCO keypoints file (no images or no keypoint category)")
    names = categories[0]["keypoints"]
    mapping = [_schema_index(n) for n in names]
    unknown = [n for n, m in zip(names, mapping, strict=True) if m is None]
    if unknown:
        LOG.warning("%s: ignoring keypoints not in the schema: %s", json_path, ", ".join(unknown))
    by_image: dict[int, dict] = {}
    for ann in coco.get("annotations", []):
        if ann.get("category_id", categories[0]["id"]) != categories[0]["id"]:
            continue
        if ann["image_id"] in by_image:
            raise DatasetError(f"{json_path}: image {ann['image_id']} has more than one annotation")
        by_image[ann["image_id"]] = ann
    root = json_path.parent
    samples = []
    for img in coco["images"]:
        path = root / img["file_name"]
        if not path.is_file():
            path = root / "images" / img["file_name"]
        xy = np.zeros((NUM_KEYPOINTS, 2))
        visible = np.zeros(NUM_KEYPOINTS, dtype=bool)
        ann = by_image.get(img["id"])
        if ann is not None:
            kps = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
            if len(kps) != len(names):
                raise DatasetError(
                    f"{json_path}: image {img['id']} has {len(kps)} keypoints, expected {len(names)}"
                )
            for (x, y, v), idx in zip(kps, mapping, strict=True):
                if idx is not None and v > 0:
                    xy[idx] = (x, y)
                    visible[idx] = True
        meta = {k: v for k, v in img.items() if k not in {"id", "file_name", "width", "height"}}
        samples.append(Sample(path, xy, visible, int(img["width"]), int(img["height"]), meta))
    return samples


def load_supervisely(root: str | Path) -> list[Sample]:
    """Samples of a Supervisely project folder (or one of its dataset folders)."""
    root = Path(root)
    ann_dirs = sorted(p for p in root.rglob("ann") if p.is_dir() and (p.parent / "img").is_dir())
    if not ann_dirs:
        raise DatasetError(f"{root}: no Supervisely 'ann'/'img' folder pair found")
    samples = []
    ignored: set[str] = set()
    for ann_dir in ann_dirs:
        for ann_path in sorted(ann_dir.glob("*.json")):
            image_path = ann_dir.parent / "img" / ann_path.name.removesuffix(".json")
            if not image_path.is_file():
                raise DatasetError(f"{ann_path}: image {image_path} not found")
            ann = json.loads(ann_path.read_text())
            xy = np.zeros((NUM_KEYPOINTS, 2))
            visible = np.zeros(NUM_KEYPOINTS, dtype=bool)
            for obj in ann.get("objects", []):
                idx = _schema_index(obj.get("classTitle", ""))
                exterior = obj.get("points", {}).get("exterior", [])
                if idx is None or not exterior:
                    ignored.add(str(obj.get("classTitle")))
                    continue
                if visible[idx]:
                    raise DatasetError(f"{ann_path}: keypoint {KEYPOINT_NAMES[idx]} annotated twice")
                xy[idx] = np.asarray(exterior[0], dtype=np.float64) + 0.5
                visible[idx] = True
            size = ann.get("size", {})
            if "width" not in size or "height" not in size:
                h, w = read_image(image_path).shape[:2]
            else:
                w, h = size["width"], size["height"]
            samples.append(Sample(image_path, xy, visible, int(w), int(h), {"source": "supervisely"}))
    if ignored:
        LOG.warning("%s: ignored objects of classes %s", root, ", ".join(sorted(ignored)))
    return samples


def load_samples(path: str | Path) -> list[Sample]:
    """Samples from a dataset folder or file, the format detected from what is there."""
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        samples = load_coco_keypoints(path)
    elif (path / "annotations.json").is_file():
        samples = load_coco_keypoints(path / "annotations.json")
    elif path.is_dir():
        samples = load_supervisely(path)
    else:
        raise DatasetError(f"dataset not found: {path}")
    if not samples:
        raise DatasetError(f"{path}: no annotated frames")
    return samples
