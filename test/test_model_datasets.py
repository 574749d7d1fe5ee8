"""Data loaders (COCO keypoints, Supervisely) on real files, and training input = inference input."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from keypoint_data import random_frame, write_coco_dataset, write_supervisely_dataset

from tavi_perception.inference.processing import preprocess
from tavi_perception.keypoints import NUM_KEYPOINTS, Kp
from tavi_perception.model.augment import AugmentConfig
from tavi_perception.model.datasets import DatasetError, Sample, load_samples
from tavi_perception.model.losses import baseline_loss, group_presence, heatmap_loss, render_heatmap_targets
from tavi_perception.model.networks import ModelConfig, build_model
from tavi_perception.model.train import TrainStream, prepare_sample
from tavi_perception.sim import dataset as sim_dataset


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


def test_generated_negatives_train_as_group_absent_and_every_point_invisible(tmp_path):
    """Negatives of ``tavi-perception dataset`` through the training stream: all targets absent."""
    root = tmp_path / "neg"
    kinds = "white,noise,stripes,smooth_noise"
    argv = ["--out", str(root), "--negatives-only", "--negative-frames", "4", "--negative-kinds", kinds]
    assert sim_dataset.main([*argv, "--size", "128", "--quiet"]) == 0
    samples = load_samples(root)
    assert len(samples) == 4 and all(s.meta["negative"] for s in samples)
    size = 64
    for cfg in (None, AugmentConfig()):  # as validated, and augmented as in training
        stream = TrainStream(samples, size, seed=3, cfg=cfg)
        batch = [stream[p] for p in range(8)]  # two epochs
        x = torch.stack([b[0] for b in batch])
        xy = torch.stack([b[1] for b in batch])
        vis = torch.stack([b[2] for b in batch])
        assert x.shape == (8, 1, size, size) and torch.isfinite(x).all() and x.std() > 0
        assert vis.dtype == torch.bool and not vis.any()  # every visibility 0
        assert (xy == 0).all()
        assert (group_presence(vis) == 0).all()  # every group absent
        heat, _, mask = render_heatmap_targets(xy, vis, (size // 4, size // 4))
        assert heat.shape == (8, NUM_KEYPOINTS, size // 4, size // 4)
        assert heat.max() == 0 and mask.sum() == 0  # no heatmap peak, no offset supervised
    # both losses are finite on an all-negative batch, the coordinate terms vanish, and they pull the
    # group and point logits towards "absent"
    torch.manual_seed(0)
    for arch, coordinate in (("heatmap", "offset"), ("baseline", "wing")):
        net = build_model(ModelConfig(arch=arch, input_size=size)).eval()
        with torch.no_grad():
            out = net(x)
        loss = heatmap_loss if arch == "heatmap" else baseline_loss
        args = (xy, vis) if arch == "heatmap" else (xy, vis, size)
        total, parts = loss(out, *args)
        assert torch.isfinite(total) and parts[coordinate] == 0.0
        absent = dict(out, group_logit=torch.full_like(out["group_logit"], -8.0))
        absent["point_logit"] = torch.full_like(out["point_logit"], -8.0)
        present = dict(out, group_logit=torch.full_like(out["group_logit"], 8.0))
        present["point_logit"] = torch.full_like(out["point_logit"], 8.0)
        assert loss(absent, *args)[0] < total < loss(present, *args)[0]
