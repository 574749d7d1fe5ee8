"""``tavi-perception eval`` on tiny datasets: table, JSON last line, baseline beside it, the refinements."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from keypoint_data import write_coco_dataset

from tavi_perception.cli import main as cli_main
from tavi_perception.core.pipeline import SHIPPED_REFINE_MODEL, SHIPPED_ROOT_REFINE_MODEL, shipped_model_path
from tavi_perception.keypoints import KEYPOINT_NAMES
from tavi_perception.model.checkpoint import save_checkpoint
from tavi_perception.model.export import export
from tavi_perception.model.networks import ModelConfig, build_model
from tavi_perception.sim.contrast import ContrastSchedule, Injection
from tavi_perception.sim.delivery import DeliveryState
from tavi_perception.sim.simulator import ProcedureSimulator


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


@pytest.fixture(scope="module")
def valve_out_frames(tmp_path_factory):
    """Four simulated frames with the valve half released, as a dataset with each frame's mm_per_px."""
    root = tmp_path_factory.mktemp("valve_out")
    (root / "images").mkdir()
    sim = ProcedureSimulator(0, image_size=256, contrast=ContrastSchedule((Injection(0.0, plateau_s=600.0),)))
    sim.place(DeliveryState(4.0, 15.0))
    frame = sim.step()
    while frame.contrast < 0.95:  # the valve out in contrast: both refinements have their points
        frame = sim.step()
    images, annotations = [], []
    for i in range(4):
        frame = sim.step()
        cv2.imwrite(str(root / f"images/f{i}.png"), frame.image)
        kps = np.concatenate([frame.keypoints_px, 2.0 * frame.visible[:, None]], axis=1)
        kps[~frame.visible] = 0.0
        images.append(
            {
                "id": i,
                "file_name": f"images/f{i}.png",
                "width": 256,
                "height": 256,
                "mm_per_px": frame.mm_per_px,
            }
        )
        annotations.append({"id": i, "image_id": i, "category_id": 1, "keypoints": kps.ravel().tolist()})
    categories = [{"id": 1, "name": "tavi", "keypoints": list(KEYPOINT_NAMES)}]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations.json").write_text(json.dumps(coco))
    return root


def test_eval_with_refine_root_reads_only_the_annulus_landmarks_again(valve_out_frames, capsys):
    argv = ["eval", "--model", str(shipped_model_path()), "--data", str(valve_out_frames), "--json"]
    assert cli_main(argv) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    root_model = str(shipped_model_path(SHIPPED_ROOT_REFINE_MODEL))
    assert cli_main([*argv, "--refine-root", root_model]) == 0
    refined = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert plain["refine_root"] is None and refined["refine_root"] == root_model
    root = ("AA1", "AA2", "STJ1", "STJ2")
    assert any(
        refined["keypoints"][k]["mean_error_px"] != plain["keypoints"][k]["mean_error_px"] for k in root
    )
    others = set(KEYPOINT_NAMES) - set(root)
    assert {k: refined["keypoints"][k] for k in others} == {k: plain["keypoints"][k] for k in others}


def test_eval_with_refine_reads_only_the_frame_edges_again(valve_out_frames, capsys):
    argv = ["eval", "--model", str(shipped_model_path()), "--data", str(valve_out_frames), "--json"]
    assert cli_main(argv) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    refine_model = str(shipped_model_path(SHIPPED_REFINE_MODEL))
    assert cli_main([*argv, "--refine", refine_model]) == 0
    refined = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert plain["refine"] is None and refined["refine"] == refine_model
    for name in ("FE1", "FE2"):
        assert refined["keypoints"][name]["tp"] == 4
        assert refined["keypoints"][name]["mean_error_px"] != plain["keypoints"][name]["mean_error_px"]
    others = set(KEYPOINT_NAMES) - {"FE1", "FE2"}
    assert {k: refined["keypoints"][k] for k in others} == {k: plain["keypoints"][k] for k in others}


def test_eval_with_refine_needs_each_frames_scale(setup, capsys):
    data, model, _ = setup  # frames without mm_per_px
    assert cli_main(["eval", "--model", str(model), "--data", str(data), "--refine", str(model)]) == 2
    assert "needs each frame's mm_per_px" in capsys.readouterr().err
