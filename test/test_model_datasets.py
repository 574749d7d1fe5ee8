"""Data loaders (COCO keypoints, Supervisely) on real files, and training input = inference input."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from keypoint_data import random_frame, write_coco_dataset, write_supervisely_dataset

from tavi_perception.inference.processing import preprocess
from tavi_perception.keypoints import NUM_KEYPOINTS, Kp
from tavi_perception.model.datasets import DatasetError, Sample, load_samples
from tavi_perception.model.train import prepare_sample


def test_coco_dataset_loads_points_visibility_and_frame_fields(tmp_path):
    root = write_coco_dataset(tmp_path / "ds", frames=3, size=64, seed=5)
    coco = json.loads((root / "annotations.json").read_text())
    samples = load_samples(root)
    assert len(samples) == 3
    for s, ann in zip(samples, coco["annotations"], strict=True):
        kps = np.asarray(ann["keypoints"]).reshape(NUM_KEYPOINTS, 3)
        assert s.image_path.is_file() and (s.width, s.height) == (64, 64)
        np.testing.assert_array_equal(s.visible, kps[:, 2] > 0)
        np.testing.assert_allclose(s.xy_px[s.visible], kps[s.visible, :2])
        assert s.meta["frame_index"] == ann["image_id"]


def test_coco_keypoints_are_matched_to_the_schema_by_name(tmp_path):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "a.png"), np.zeros((32, 32), np.uint8))
    names = ["ct", "AA1", "lasso"]  # another order, lower case, and a name outside the schema
    coco = {
        "images": [{"id": 7, "file_name": "a.png", "width": 32, "height": 32}],
        "annotations": [{"image_id": 7, "category_id": 3, "keypoints": [5, 6, 2, 0, 0, 0, 9, 9, 2]}],
        "categories": [{"id": 3, "name": "tavi", "keypoints": names}],
    }
    (root / "annotations.json").write_text(json.dumps(coco))
    (s,) = load_samples(root)
    assert s.visible.tolist() == [k == Kp.CT for k in range(NUM_KEYPOINTS)]
    assert s.xy_px[Kp.CT].tolist() == [5.0, 6.0]


def test_two_annotations_for_one_image_are_rejected(tmp_path):
    root = write_coco_dataset(tmp_path / "ds", frames=2, size=32)
    coco = json.loads((root / "annotations.json").read_text())
    coco["annotations"][1]["image_id"] = coco["annotations"][0]["image_id"]
    (root / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match="more than one annotation"):
        load_samples(root)


def test_supervisely_points_land_on_pixel_centres_and_other_classes_are_ignored(tmp_path):
    xy = np.zeros((NUM_KEYPOINTS, 2))
    vis = np.zeros(NUM_KEYPOINTS, dtype=bool)
    xy[Kp.PT], vis[Kp.PT] = (10, 20), True
    xy[Kp.FE2], vis[Kp.FE2] = (3, 4), True
    (s,) = load_samples(write_supervisely_dataset(tmp_path / "sly", xy, vis))
    assert s.visible.tolist() == vis.tolist()
    assert s.xy_px[Kp.PT].tolist() == [10.5, 20.5] and s.xy_px[Kp.FE2].tolist() == [3.5, 4.5]
    assert (s.width, s.height) == (64, 64)


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_samples(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="Supervisely"):
        load_samples(tmp_path / "empty")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_training_input_without_augmentation_equals_the_inference_input(tmp_path, dtype):
    image, xy, vis = random_frame(np.random.default_rng(2), 200, dtype=dtype)
    path = tmp_path / "f.png"
    cv2.imwrite(str(path), image)
    sample = Sample(path, xy, vis, 200, 200)
    x, xy_in, vis_in = prepare_sample(sample, 64, rng=None, cfg=None)
    np.testing.assert_allclose(x, preprocess(image, 64)[0, 0], atol=1e-4)
    np.testing.assert_allclose(xy_in, xy * 64 / 200)
    assert vis_in.tolist() == vis.tolist()
