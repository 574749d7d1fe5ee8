"""`tavi-perception eval-tracking` on a short simulated procedure (ground truth + detector noise)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tavi_perception import cli
from tavi_perception.evaluation.tracking import DetectorNoise

REQUIRED_KEYS = {
    "jitter_reduction",
    "lag_frames",
    "tip_depth_error_mm_mean",
    "tip_depth_error_mm_p95",
    "annulus_bound_error_mm_mean",
    "source",
}


def test_eval_tracking_reports_the_required_metrics_as_json(tmp_path, capsys) -> None:
    out = tmp_path / "tracking.json"
    argv = ["eval-tracking", "--cases", "1", "--duration-s", "14", "--source", "truth-noise", "--json"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed.keys() >= REQUIRED_KEYS
    assert printed["source"] == "truth-noise" and "simulated detector" in printed["source_description"]
    assert printed["frames"] > 150
    assert printed["jitter_reduction"] > 0.0  # tracking smooths the simulated detector noise
    assert printed["keypoint_error_px_tracked_mean"] < printed["keypoint_error_px_raw_mean"]
    assert printed["tip_depth_frames_pigtail_bound"] > 0  # contrast-free stretches are included


def test_eval_tracking_refuses_a_missing_model(tmp_path) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["eval-tracking", "--source", "model", "--model", str(tmp_path / "none.onnx")])
    assert exc.value.code == 2


def test_simulated_detector_flags_its_outliers_and_false_positives() -> None:
    rng = np.random.default_rng(0)
    truth = np.full((11, 2), 256.0)
    visible = np.arange(11) < 6
    noise = DetectorNoise(noise_px=0.0, miss_rate=0.0, outlier_rate=0.5, false_positive_rate=0.5)
    wrong_any = np.zeros(11, dtype=bool)
    for _ in range(20):
        xy, vis, wrong = noise.detect(rng, truth, visible, 512)
        far = np.hypot(*(xy - truth).T) > 10.0
        np.testing.assert_array_equal(far & visible, wrong & visible)
        assert (vis[wrong] >= 0.5).all()
        wrong_any |= wrong
    assert wrong_any[visible].any() and wrong_any[~visible].any()
