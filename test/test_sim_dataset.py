"""``tavi-perception dataset``: valid COCO keypoints with the schema, deterministic per seed, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tavi_perception import cli
from tavi_perception.keypoints import KEYPOINT_NAMES
from tavi_perception.model.datasets import load_coco_keypoints
from tavi_perception.sim.ct.simulator import create_simulator, simulation_case
from tavi_perception.sim.dataset import TEST_SPLIT, case_seed, main, parse_args
from tavi_perception.sim.scenario import sampling_times

ARGS = ["--cases", "2", "--frames-per-case", "5", "--seed", "5", "--size", "128", "--quiet"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "a"
    assert main(["--out", str(out), *ARGS]) == 0
    return out


def test_dataset_is_coco_keypoints_with_the_schema(dataset: Path) -> None:
    coco = json.loads((dataset / "annotations.json").read_text())
    assert coco["categories"] == [
        {"id": 1, "name": "tavi", "keypoints": list(KEYPOINT_NAMES), "skeleton": []}
    ]
    assert len(coco["images"]) == len(coco["annotations"]) == 10
    ids = {img["id"] for img in coco["images"]}
    for img, ann in zip(coco["images"], coco["annotations"], strict=True):
        assert ann["image_id"] == img["id"] and ann["category_id"] == 1 and ann["image_id"] in ids
        kps = np.array(ann["keypoints"], dtype=float).reshape(11, 3)
        assert set(kps[:, 2]) <= {0.0, 2.0}
        assert np.all(kps[kps[:, 2] == 0, :2] == 0.0)
        shown = kps[kps[:, 2] == 2, :2]
        assert np.all((shown >= 0) & (shown < 128))
        assert ann["num_keypoints"] == int((kps[:, 2] == 2).sum())
        pixels = cv2.imread(str(dataset / img["file_name"]), cv2.IMREAD_UNCHANGED)
        assert pixels.shape == (img["height"], img["width"]) == (128, 128) and pixels.dtype == np.uint8
        for key in ("case_id", "frame_index", "t_s", "mm_per_px", "phase", "contrast", "true_geometry"):
            assert key in img
        for key in ("tip_depth_mm", "stent_mean_depth_mm", "deployment_fraction", "annulus_origin_px"):
            assert key in img["true_geometry"]


def test_dataset_loads_with_the_training_loader(dataset: Path) -> None:
    samples = load_coco_keypoints(dataset / "annotations.json")
    assert len(samples) == 10 and all(s.image_path.is_file() for s in samples)
    coco = json.loads((dataset / "annotations.json").read_text())
    for sample, ann in zip(samples, coco["annotations"], strict=True):
        kps = np.array(ann["keypoints"], dtype=float).reshape(11, 3)
        np.testing.assert_array_equal(sample.visible, kps[:, 2] == 2)
        np.testing.assert_allclose(sample.xy_px[sample.visible], kps[kps[:, 2] == 2, :2])
    assert all(s.meta["phase"] in {"approach", "positioning", "deployment", "release"} for s in samples)


def test_frames_spread_over_the_procedure(dataset: Path) -> None:
    coco = json.loads((dataset / "annotations.json").read_text())
    summary = json.loads((dataset / "dataset.json").read_text())
    for case_id in (0, 1):
        phases = [img["phase"] for img in coco["images"] if img["case_id"] == case_id]
        assert phases[0] == "approach" and phases[-1] == "release"
        times = [img["t_s"] for img in coco["images"] if img["case_id"] == case_id]
        assert times == sorted(times)
    assert summary["images"] == 10 and summary["seed"] == 5 and summary["generator_version"]
    # without a negatives option: no negative frames and no negative fields (test/test_sim_negatives.py)
    assert "negatives" not in summary and not any("negative" in img for img in coco["images"])
    assert sum(summary["share_phase"].values()) == pytest.approx(1.0)


def test_same_seed_writes_the_same_dataset(dataset: Path, tmp_path: Path) -> None:
    again = tmp_path / "b"
    assert main(["--out", str(again), *ARGS]) == 0
    assert (again / "annotations.json").read_text() == (dataset / "annotations.json").read_text()
    for png in sorted((dataset / "images").glob("*.png")):
        assert (again / "images" / png.name).read_bytes() == png.read_bytes()


def test_bad_arguments_exit_with_a_message(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for argv, message in (
        (["--out", str(tmp_path / "x"), "--cases", "0"], "--cases"),
        (["--out", str(tmp_path / "x"), "--size", "64"], "--size"),
        (["--out", str(dataset)], "--overwrite"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_test_split_is_the_documented_one(tmp_path: Path) -> None:
    args = parse_args(["--out", str(tmp_path / "t"), "--test-split"])
    assert (
        {k: getattr(args, k) for k in TEST_SPLIT}
        == TEST_SPLIT
        == {
            "cases": 24,
            "seed": 9001,
            "frames_per_case": 20,
            "size": 512,
        }
    )


def test_cli_runs_the_dataset_command(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["dataset", "--help"])
    assert exc.value.code == 0
    assert "--cases 24 --seed 9001 --frames-per-case 20 --size 512" in capsys.readouterr().out.replace(
        "\n", " "
    )


def test_off_curve_frames_come_from_the_case_seen_off_the_s_curve(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "off"
    assert main(["--out", str(out), *ARGS, "--off-curve", "20"]) == 0
    assert json.loads((out / "dataset.json").read_text())["off_curve_deg"] == 20.0
    coco = json.loads((out / "annotations.json").read_text())
    for case_id in (0, 1):
        offset_deg = 20.0 * float(np.random.default_rng([5, case_id, 11]).uniform(-1.0, 1.0))
        case = simulation_case("stylised", case_seed(5, case_id), view_offset_deg=offset_deg)
        first = next(img for img in coco["images"] if img["case_id"] == case_id)
        sim = create_simulator("stylised", case, image_size=128)
        t_s = sampling_times(sim.scenario, 5, np.random.default_rng([5, case_id, 7]))[0]
        frame = sim.frame_at(float(t_s), frame_index=0)
        written = cv2.imread(str(out / first["file_name"]), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(written, frame.image)
        default = cv2.imread(str(dataset / first["file_name"]), cv2.IMREAD_UNCHANGED)
        assert not np.array_equal(written, default)  # another view of the same case
    with pytest.raises(SystemExit):
        parse_args(["--out", str(tmp_path / "x"), "--off-curve", "50"])
