"""Metric definitions (tavi_perception.evaluation.metrics) on constructed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tavi_perception.evaluation.metrics import compute_metrics, format_table, json_safe
from tavi_perception.keypoints import NUM_KEYPOINTS, Kp


def _case():
    """Two 512² frames: frame 0 has AA1, CT visible; frame 1 has CT, FE1 visible."""
    gt_xy = np.zeros((2, NUM_KEYPOINTS, 2))
    gt_vis = np.zeros((2, NUM_KEYPOINTS), dtype=bool)
    gt_xy[0, Kp.AA1], gt_vis[0, Kp.AA1] = (100, 100), True
    gt_xy[0, Kp.CT], gt_vis[0, Kp.CT] = (200, 200), True
    gt_xy[1, Kp.CT], gt_vis[1, Kp.CT] = (300, 300), True
    gt_xy[1, Kp.FE1], gt_vis[1, Kp.FE1] = (50, 60), True
    pred_xy = gt_xy.copy()
    pred_vis = np.full((2, NUM_KEYPOINTS), 0.1)
    pred_xy[0, Kp.AA1] += (3, 4)  # TP, 5 px off
    pred_vis[0, Kp.AA1] = 0.9
    pred_xy[0, Kp.CT] += (30, 0)  # TP, 30 px off
    pred_vis[0, Kp.CT] = 0.5  # exactly at the threshold counts as predicted
    pred_vis[1, Kp.CT] = 0.49  # FN
    pred_xy[1, Kp.FE1] += (0, 1)  # TP, 1 px off
    pred_vis[1, Kp.FE1] = 0.99
    pred_vis[1, Kp.PT] = 0.8  # FP
    return gt_xy, gt_vis, pred_xy, pred_vis


def test_counts_precision_recall_f1_and_errors_overall():
    m = compute_metrics(*_case(), image_wh=(512, 512))
    o = m["overall"]
    assert (o["tp"], o["fp"], o["fn"]) == (3, 1, 1)
    assert o["precision"] == pytest.approx(0.75) and o["recall"] == pytest.approx(0.75)
    assert o["f1"] == pytest.approx(0.75)
    assert o["mean_error_px"] == pytest.approx((5 + 30 + 1) / 3)
    assert o["median_error_px"] == pytest.approx(5.0)
    assert o["loc_acc_5px"] == pytest.approx(2 / 3)  # 5 px is within 5 px
    assert o["loc_acc_5pct"] == pytest.approx(2 / 3)  # 30 px > 25.6 px
    assert m["frames"] == 2


def test_per_group_and_per_keypoint_scopes():
    m = compute_metrics(*_case(), image_wh=(512, 512))
    inst = m["groups"]["instrumental"]
    assert (inst["tp"], inst["fp"], inst["fn"]) == (1, 0, 1)
    assert inst["precision"] == 1.0 and inst["recall"] == 0.5
    assert inst["f1"] == pytest.approx(2 / 3)
    contour = m["groups"]["contour"]
    assert (contour["tp"], contour["fp"], contour["fn"]) == (1, 1, 0)
    pt = m["keypoints"]["PT"]
    assert (pt["tp"], pt["fp"], pt["fn"]) == (0, 1, 0)
    assert pt["precision"] == 0.0 and math.isnan(pt["recall"]) and math.isnan(pt["mean_error_px"])
    assert m["keypoints"]["AA1"]["mean_error_px"] == pytest.approx(5.0)


def test_errors_are_measured_at_512_for_larger_images():
    gt_xy, gt_vis, pred_xy, pred_vis = _case()
    m = compute_metrics(gt_xy * 2, gt_vis, pred_xy * 2, pred_vis, image_wh=(1024, 1024))
    assert m["overall"]["mean_error_px"] == pytest.approx((5 + 30 + 1) / 3)
    assert m["overall"]["loc_acc_5px"] == pytest.approx(2 / 3)


def test_axes_scale_separately_for_non_square_images():
    gt_xy = np.zeros((1, NUM_KEYPOINTS, 2))
    gt_vis = np.zeros((1, NUM_KEYPOINTS), dtype=bool)
    gt_vis[0, Kp.CD] = True
    pred_xy = gt_xy.copy()
    pred_xy[0, Kp.CD] = (8.0, 6.0)  # at 512²: (4, 3) -> 5 px
    m = compute_metrics(gt_xy, gt_vis, pred_xy, gt_vis.astype(float), image_wh=(1024, 1024))
    assert m["overall"]["mean_error_px"] == pytest.approx(5.0)
    m = compute_metrics(gt_xy, gt_vis, pred_xy, gt_vis.astype(float), image_wh=(1024, 512))
    assert m["overall"]["mean_error_px"] == pytest.approx(math.hypot(4.0, 6.0))


def test_nothing_present_or_predicted_gives_undefined_figures_as_json_null():
    z = np.zeros((1, NUM_KEYPOINTS, 2))
    m = compute_metrics(z, np.zeros((1, NUM_KEYPOINTS), bool), z, np.zeros((1, NUM_KEYPOINTS)), (512, 512))
    assert (m["overall"]["tp"], m["overall"]["fp"], m["overall"]["fn"]) == (0, 0, 0)
    text = json.dumps(json_safe(m), allow_nan=False)
    assert json.loads(text)["overall"]["f1"] is None


def test_table_lists_every_scope_for_every_model():
    m = compute_metrics(*_case(), image_wh=(512, 512))
    table = format_table({"ours": m, "baseline": m})
    lines = table.splitlines()
    assert len(lines) == 2 + 2 * (1 + 3 + NUM_KEYPOINTS)
    assert "0.7500" in lines[2] and "12.00" in lines[2]


def test_frames_without_any_keypoint_count_as_left_empty_only_when_nothing_is_detected():
    z = np.zeros((3, NUM_KEYPOINTS, 2))
    gt_vis = np.zeros((3, NUM_KEYPOINTS), bool)
    gt_vis[2, Kp.CT] = True  # a positive frame does not count
    pred_vis = np.zeros((3, NUM_KEYPOINTS))
    pred_vis[1, Kp.PT] = 0.7  # a negative frame with one detection
    m = compute_metrics(z, gt_vis, z, pred_vis, (512, 512))
    assert m["empty_frames"] == {"frames": 2, "none_detected": 1, "none_detected_rate": 0.5}
    assert "1 of 2 with no keypoint detected" in format_table({"ours": m})
    positives_only = compute_metrics(*_case(), image_wh=(512, 512))
    assert positives_only["empty_frames"]["frames"] == 0
    assert "no keypoint annotated" not in format_table({"ours": positives_only})
