"""The two published designs as code: the 2021 multi-task MobileNetV2 (presence BCE + log-cosh) and the
2025 grouped ResNet-34 (group presence + point visibility + Wing), trainable, exportable, evaluable."""

from __future__ import annotations

import json
import math

import pytest
import torch
from keypoint_data import write_coco_dataset

from tavi_perception.evaluation.keypoints import main as eval_main
from tavi_perception.keypoints import GROUP_MEMBERS, NUM_KEYPOINTS, Group, Kp
from tavi_perception.model.checkpoint import save_checkpoint
from tavi_perception.model.export import export
from tavi_perception.model.losses import log_cosh, multitask_loss
from tavi_perception.model.networks import DeployModel, ModelConfig, build_model, count_parameters
from tavi_perception.model.train import main as train_main


def test_log_cosh_matches_its_definition_and_stays_finite_far_out():
    x = torch.tensor([0.0, 0.5, -2.0, 30.0])
    want = [math.log(math.cosh(v)) for v in (0.0, 0.5, -2.0, 30.0)]
    assert log_cosh(x).tolist() == pytest.approx(want, rel=1e-6, abs=1e-7)
    assert log_cosh(torch.tensor([1e4])).item() == pytest.approx(1e4 - math.log(2), rel=1e-6)


def test_multitask_loss_is_presence_bce_plus_log_cosh_in_percent_over_visible_points():
    xy_px = torch.zeros(1, NUM_KEYPOINTS, 2)
    xy_px[0, Kp.CT] = torch.tensor([50.0, 20.0])
    visible = torch.zeros(1, NUM_KEYPOINTS, dtype=torch.bool)
    visible[0, Kp.CT] = True
    pred = torch.full((1, NUM_KEYPOINTS, 2), 9.0)  # invisible points far off: must not count
    pred[0, Kp.CT] = torch.tensor([0.51, 0.20])  # 1 % of the side off in x, exact in y
    out = {"point_logit": torch.zeros(1, NUM_KEYPOINTS), "xy": pred}
    total, parts = multitask_loss(out, xy_px, visible, input_size=100)
    assert parts["presence"] == pytest.approx(math.log(2), rel=1e-6)
    assert parts["log_cosh"] == pytest.approx(math.log(math.cosh(1.0)) / 2, rel=1e-4)
    assert total.item() == pytest.approx(math.log(2) + math.log(math.cosh(1.0)) / 2, rel=1e-4)


def test_mobilenetv2_has_the_published_shape_and_its_group_probability_is_the_best_member():
    net = build_model(ModelConfig(arch="mobilenetv2", input_size=96)).eval()
    assert 2.2e6 < count_parameters(net) < 2.4e6  # MobileNetV2 1.0 (2.2 M) with 11 + 22 outputs
    with torch.no_grad():
        _, vis, group = DeployModel(net)(torch.randn(2, 1, 96, 96))
    for g in Group:
        members = [int(k) for k in GROUP_MEMBERS[g]]
        assert torch.equal(group[:, int(g)], vis[:, members].amax(dim=1))


@pytest.mark.parametrize("arch", ["baseline", "mobilenetv2"])
def test_a_published_design_trains_exports_and_evaluates_like_ours(arch, tmp_path):
    data = write_coco_dataset(tmp_path / "data", frames=4, size=64, seed=3)
    args = ["--data", str(data), "--out", str(tmp_path / "run"), "--arch", arch, "--input-size", "64"]
    assert train_main([*args, "--steps", "2", "--batch-size", "2", "--threads", "1", "--warmup", "1"]) == 0
    meta = export(tmp_path / "run" / "last.pt", tmp_path / f"{arch}.onnx")
    assert meta["arch"] == arch and meta["onnx_torch_max_deviation"] <= 1e-4
    assert eval_main(["--model", str(tmp_path / f"{arch}.onnx"), "--data", str(data), "--json"]) == 0


def test_one_eval_run_tables_ours_beside_both_published_designs(tmp_path, capsys):
    data = write_coco_dataset(tmp_path / "data", frames=3, size=64, seed=4)
    models = []
    for arch in ("heatmap", "baseline", "mobilenetv2"):
        config = ModelConfig(arch=arch, input_size=64)
        torch.manual_seed(0)
        ckpt = tmp_path / f"{arch}.pt"
        save_checkpoint(ckpt, {"config": config.to_dict(), "model": build_model(config).state_dict()})
        export(ckpt, tmp_path / f"{arch}.onnx")
        models.append(str(tmp_path / f"{arch}.onnx"))
    assert eval_main(["--model", models[0], "--compare", *models[1:], "--data", str(data), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert [c["model"] for c in result["compare"]] == models[1:]
    assert all(c["frames"] == 3 for c in result["compare"])
    table = [line.split()[1] for line in lines if line.startswith("all ")]
    assert table == ["heatmap", "baseline", "mobilenetv2"]
