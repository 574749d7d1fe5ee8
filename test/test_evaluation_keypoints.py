"""``tavi-perception eval`` on a tiny generated dataset: table, JSON last line, baseline side by side."""

from __future__ import annotations

import json

import pytest
import torch
from keypoint_data import write_coco_dataset

from tavi_perception.cli import main as cli_main
from tavi_perception.model.checkpoint import save_checkpoint
from tavi_perception.model.export import export
from tavi_perception.model.networks import ModelConfig, build_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = write_coco_dataset(root / "data", frames=4, size=128, seed=3)
    torch.manual_seed(0)
    config = ModelConfig(arch="heatmap", input_size=64)
    ckpt = root / "m.pt"
    save_checkpoint(
        ckpt, {"config": config.to_dict(), "model": build_model(config).state_dict(), "metadata": {}}
    )
    export(ckpt, root / "m.onnx")
    return data, root / "m.onnx", ckpt


def test_eval_prints_a_table_and_a_json_last_line(setup, capsys):
    data, model, _ = setup
    assert cli_main(["eval", "--model", str(model), "--data", str(data), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert {"precision", "recall", "f1", "mean_error_px", "loc_acc_5px", "frames"} <= result.keys()
    assert result["frames"] == 4 and result["backend"] == "onnxruntime:CPUExecutionProvider"
    coco = json.loads((data / "annotations.json").read_text())
    n_visible = sum(a["num_keypoints"] for a in coco["annotations"])
    assert result["tp"] + result["fn"] == n_visible
    assert (
        set(result["groups"]) == {"anatomical", "instrumental", "contour"} and len(result["keypoints"]) == 11
    )
    assert any(line.startswith("all") for line in lines) and any("CT" in line for line in lines)


def test_eval_runs_a_baseline_beside_the_model_in_one_run(setup, capsys):
    data, model, ckpt = setup
    argv = ["eval", "--model", str(model), "--data", str(data), "--json", "--baseline", str(ckpt)]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert result["baseline"]["backend"] == "torch:cpu" and result["baseline"]["frames"] == 4
    # the .pt is the same network as the .onnx: the two columns agree
    assert result["baseline"]["tp"] == result["tp"] and result["baseline"]["fp"] == result["fp"]
    assert sum(1 for line in out if line.startswith("all")) == 2


def test_eval_reports_a_missing_dataset_as_a_usage_error(setup, tmp_path, capsys):
    _, model, _ = setup
    assert cli_main(["eval", "--model", str(model), "--data", str(tmp_path / "none")]) == 2
    assert "not found" in capsys.readouterr().err
