"""``tavi-perception crops``: a crop per frame with both frame edges, labels mapped into it, reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tavi_perception import cli
from tavi_perception.inference.refinement import CROP_MM, ROOT, crop_window
from tavi_perception.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS, Kp
from tavi_perception.model.datasets import load_coco_keypoints

MM_PER_PX = CROP_MM / 40  # 40 px crops


def _frame_labels(fe: bool) -> list[float]:
    kps = np.zeros((NUM_KEYPOINTS, 3))
    kps[Kp.CT] = (100.0, 100.0, 2)
    kps[Kp.CP] = (10.0, 10.0, 2)  # far outside any crop around the valve
    if fe:
        kps[Kp.FE1], kps[Kp.FE2] = (90.0, 95.0, 2), (110.0, 105.0, 2)
    return kps.ravel().tolist()


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    """A dataset folder on disk: two frames with the valve out, one with it closed."""
    root = tmp_path / "rendered"
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for i, fe in enumerate((True, False, True), start=1):
        pixels = ((np.arange(200)[None, :] + 7 * np.arange(200)[:, None] + i) % 65536).astype(np.uint16)
        cv2.imwrite(str(root / f"images/f{i}.png"), pixels)
        images.append(
            {"id": i, "file_name": f"images/f{i}.png", "width": 200, "height": 200, "mm_per_px": MM_PER_PX}
        )
        annotations.append({"id": i, "image_id": i, "category_id": 1, "keypoints": _frame_labels(fe)})
    categories = [{"id": 1, "name": "tavi", "keypoints": list(KEYPOINT_NAMES)}]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations.json").write_text(json.dumps(coco))
    return root


def test_crops_are_cut_around_the_frame_edges_with_labels_mapped_into_them(rendered, tmp_path):
    out = tmp_path / "crops"
    assert cli.main(["crops", "--data", str(rendered), "--out", str(out), "--jitter-mm", "0", "--quiet"]) == 0
    samples = load_coco_keypoints(out / "annotations.json")
    assert len(samples) == 2  # the closed-capsule frame has no frame edges to crop around
    coco = json.loads((out / "annotations.json").read_text())
    for sample, entry in zip(samples, coco["images"], strict=True):
        x0, y0 = entry["crop_x0_px"], entry["crop_y0_px"]
        assert (sample.width, sample.height) == (40, 40) and (x0, y0) == (80, 80)
        np.testing.assert_allclose(sample.xy_px[Kp.FE1], (10.0, 15.0))
        np.testing.assert_allclose(sample.xy_px[Kp.CT], (20.0, 20.0))
        assert not sample.visible[Kp.CP]  # outside the crop
        source = cv2.imread(entry["crop_of"], cv2.IMREAD_UNCHANGED)
        pixels = cv2.imread(str(sample.image_path), cv2.IMREAD_UNCHANGED)
        assert pixels.dtype == np.uint16
        np.testing.assert_array_equal(pixels, source[y0 : y0 + 40, x0 : x0 + 40])


def test_crops_move_by_the_jitter_and_repeat_for_the_same_seed(rendered, tmp_path):
    def run(name: str, seed: int) -> list[tuple[int, int]]:
        out = tmp_path / name
        argv = ["crops", "--data", str(rendered), "--out", str(out), "--seed", str(seed), "--quiet"]
        assert cli.main(argv) == 0
        return [
            (e["crop_x0_px"], e["crop_y0_px"])
            for e in json.loads((out / "annotations.json").read_text())["images"]
        ]

    first, again, other = run("a", 1), run("b", 1), run("c", 2)
    assert first == again and first != other
    jitter_px = 5.0 / MM_PER_PX
    assert all(abs(x - 80) <= jitter_px + 1 and abs(y - 80) <= jitter_px + 1 for x, y in first + other)


def test_crops_without_any_frame_edges_is_an_error(tmp_path, rendered):
    coco = json.loads((rendered / "annotations.json").read_text())
    coco["annotations"] = [a | {"keypoints": _frame_labels(False)} for a in coco["annotations"]]
    (rendered / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(SystemExit, match="nothing to crop"):
        cli.main(["crops", "--data", str(rendered), "--out", str(tmp_path / "none"), "--quiet"])


def test_a_frame_without_its_scale_is_refused_with_its_name(tmp_path, rendered):
    coco = json.loads((rendered / "annotations.json").read_text())
    del coco["images"][0]["mm_per_px"]  # e.g. a COCO export of another tool
    (rendered / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(SystemExit, match=r"f1\.png: no mm_per_px"):
        cli.main(["crops", "--data", str(rendered), "--out", str(tmp_path / "out"), "--quiet"])


def test_root_crops_are_cut_around_the_annulus_landmarks_of_contrast_frames_only(rendered, tmp_path):
    coco = json.loads((rendered / "annotations.json").read_text())
    labels = np.array(coco["annotations"][0]["keypoints"]).reshape(-1, 3)
    root_points = [Kp.AA1, Kp.AA2, Kp.STJ1, Kp.STJ2]
    labels[root_points] = [(80.0, 110.0, 2), (120.0, 110.0, 2), (84.0, 70.0, 2), (116.0, 70.0, 2)]
    coco["annotations"][0]["keypoints"] = labels.ravel().tolist()  # the only frame with contrast
    (rendered / "annotations.json").write_text(json.dumps(coco))
    out = tmp_path / "root"
    argv = ["crops", "--data", str(rendered), "--out", str(out), "--target", "root", "--jitter-mm", "0"]
    assert cli.main([*argv, "--quiet"]) == 0
    (sample,) = load_coco_keypoints(out / "annotations.json")
    size = round(ROOT.crop_mm / MM_PER_PX)
    assert (sample.width, sample.height) == (size, size)
    window = crop_window(np.array([100.0, 90.0]), MM_PER_PX, ROOT.crop_mm)  # the four points' mean
    np.testing.assert_allclose(sample.xy_px[Kp.AA1], window.to_crop(np.array([80.0, 110.0])))
    assert not sample.visible[Kp.CP]
    assert json.loads((out / "dataset.json").read_text())["target"] == "root"
