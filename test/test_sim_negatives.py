"""Negatives in `tavi-perception dataset`: every keypoint absent, every kind, no device, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tavi_perception.keypoints import NUM_KEYPOINTS, Kp
from tavi_perception.model.datasets import load_coco_keypoints
from tavi_perception.sim.carm import CArmView, Projector
from tavi_perception.sim.case import sample_case
from tavi_perception.sim.ct.anatomy import ct_case
from tavi_perception.sim.ct.scene import CTScene
from tavi_perception.sim.ct.simulator import ct_bank
from tavi_perception.sim.dataset import main
from tavi_perception.sim.delivery import DeliveryState
from tavi_perception.sim.negatives import KINDS, WEIGHTS, DevicelessCTScene, DevicelessScene, kind_counts
from tavi_perception.sim.scene import Scene

SIZE = 128
COARSE_MM = 4.0  # the CT at coarse voxels keeps these tests light (test_sim_ct_render.py does the same)
ARGS = ["--cases", "1", "--frames-per-case", "3", "--size", str(SIZE), "--seed", "3", "--quiet"]
NEG = ["--negative-frames", "12", "--ct-voxel-mm", str(COARSE_MM)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("neg") / "a"
    assert main(["--out", str(out), *ARGS, *NEG]) == 0
    return out


def _coco(root: Path) -> dict:
    return json.loads((root / "annotations.json").read_text())


def _negatives(root: Path) -> list[tuple[dict, dict]]:
    coco = _coco(root)
    return [(i, a) for i, a in zip(coco["images"], coco["annotations"], strict=True) if i.get("negative")]


def _pixels(root: Path, img: dict) -> np.ndarray:
    return cv2.imread(str(root / img["file_name"]), cv2.IMREAD_UNCHANGED)


def test_kind_counts_give_every_kind_then_follow_the_weights():
    counts = kind_counts(12)
    assert sum(counts.values()) == 12 and set(counts) == set(KINDS) and min(counts.values()) >= 1
    assert counts["ct_anatomy"] == 2  # the heaviest kind takes the first extra frame
    few = kind_counts(3)
    assert sum(few.values()) == 3 and set(k for k, n in few.items() if n) == {
        "ct_anatomy",
        "ct_off_centre",
        "stylised_background",
    }
    many = kind_counts(1000)
    assert sum(many.values()) == 1000
    for kind in KINDS:
        assert many[kind] == pytest.approx(1 + 990 * WEIGHTS[kind], abs=1)  # one each, then the weights
    assert kind_counts(5, ("black", "noise")) == {"black": 2, "noise": 3}
    with pytest.raises(ValueError, match="unknown"):
        kind_counts(3, ("lasso",))


def test_negatives_are_coco_frames_with_every_keypoint_absent(dataset: Path):
    coco = _coco(dataset)
    summary = json.loads((dataset / "dataset.json").read_text())
    negatives = _negatives(dataset)
    positives = [
        (i, a) for i, a in zip(coco["images"], coco["annotations"], strict=True) if "negative" not in i
    ]
    assert len(negatives) == 12 and len(positives) == 3 and len(coco["images"]) == summary["images"] == 15
    assert len({i["id"] for i in coco["images"]}) == 15
    for img, ann in negatives:
        assert ann["image_id"] == img["id"] and ann["category_id"] == 1
        assert ann["keypoints"] == [0.0, 0.0, 0] * NUM_KEYPOINTS and ann["num_keypoints"] == 0
        assert ann["bbox"] == [0.0, 0.0, 0.0, 0.0] and ann["area"] == 0.0
        assert img["negative"] is True and img["negative_kind"] in KINDS
        pixels = _pixels(dataset, img)
        assert pixels.shape == (img["height"], img["width"]) == (SIZE, SIZE) and pixels.dtype == np.uint8
    assert all(a["num_keypoints"] > 0 for _, a in positives)  # the positives are the usual frames
    kinds = [i["negative_kind"] for i, _ in negatives]
    assert set(kinds) == set(KINDS)  # every kind produced
    assert summary["negatives"]["per_kind"] == {k: kinds.count(k) for k in KINDS}
    assert summary["negatives"]["frames"] == 12 and summary["positives"] == 3
    assert summary["test_split"] is False and summary["share_phase"]  # shares over the positives
    assert sum(summary["share_phase"].values()) == pytest.approx(1.0)


def test_training_loader_reads_negatives_as_all_absent(dataset: Path):
    samples = load_coco_keypoints(dataset / "annotations.json")
    negatives = [s for s in samples if s.meta.get("negative")]
    assert len(negatives) == 12
    for s in negatives:
        assert not s.visible.any() and (s.xy_px == 0).all() and s.meta["negative_kind"] in KINDS
    assert all(s.visible.any() for s in samples if not s.meta.get("negative"))


def _high_pass_std(img: np.ndarray) -> float:
    f = img.astype(np.float32)
    return float((f - cv2.GaussianBlur(f, (0, 0), 1.5)).std())


def _coherence(img: np.ndarray) -> float:
    """Structure-tensor coherence over the image: 1 when every gradient is parallel (a grating, a ramp)."""
    f = img.astype(np.float64)
    gx, gy = cv2.Sobel(f, cv2.CV_64F, 1, 0), cv2.Sobel(f, cv2.CV_64F, 0, 1)
    jxx, jyy, jxy = (gx * gx).mean(), (gy * gy).mean(), (gx * gy).mean()
    root = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2)
    return float(root / (jxx + jyy))


def test_each_kind_looks_like_its_kind(dataset: Path):
    for img, _ in _negatives(dataset):
        pixels = _pixels(dataset, img).astype(np.float64)
        kind = img["negative_kind"]
        if kind == "black":
            assert pixels.mean() < 0.06 * 255
        elif kind == "white":
            assert pixels.mean() > 0.94 * 255
        elif kind == "grey":
            assert 0.08 * 255 < pixels.mean() < 0.92 * 255 and pixels.std() < 0.03 * 255
        elif kind == "noise":
            assert _high_pass_std(pixels) > 4.0
        elif kind == "smooth_noise":
            assert pixels.std() > 0.02 * 255 and _high_pass_std(pixels) < 0.5 * pixels.std()
        elif kind == "gradient":
            assert np.ptp(pixels) > 0.15 * 255 and _high_pass_std(pixels) < 1.5
        elif kind == "stripes":
            assert pixels.std() > 0.05 * 255 and _coherence(pixels) > 0.9
        else:  # rendered anatomy: an X-ray of a body seen through a C-arm view
            assert pixels.std() > 0.04 * 255 and img["mm_per_px"] > 0
            c = img["c_arm"]
            assert -45 <= c["lao_deg"] <= 45 and -30 <= c["cran_deg"] <= 30
            assert 150 <= c["detector_fov_mm"] <= 300
            iso = tuple(c["isocentre_mm"])
            view = CArmView(c["lao_deg"], c["cran_deg"], c["sid_mm"], c["sod_mm"], c["detector_fov_mm"], iso)
            x, _, z = iso
            if kind == "ct_anatomy":  # the aortic root (annulus centre, the origin) is in the field
                centre = Projector(view, SIZE).project(np.zeros(3))
                assert (centre > 0).all() and (centre < SIZE).all()
            elif kind == "ct_off_centre":  # up/down the chest or sideways, away from the heart
                assert abs(z) >= 50.0 - 1e-6 or abs(x) >= 40.0 - 1e-6


def test_same_seed_writes_the_same_negatives_and_another_seed_others(dataset: Path, tmp_path: Path):
    again = tmp_path / "b"
    assert main(["--out", str(again), *ARGS, *NEG]) == 0
    assert (again / "annotations.json").read_text() == (dataset / "annotations.json").read_text()
    for png in sorted((dataset / "images").glob("*.png")):
        assert (again / "images" / png.name).read_bytes() == png.read_bytes()
    other = tmp_path / "c"
    args = [a if a != "3" else "4" for a in ARGS]  # --seed 4
    assert main(["--out", str(other), *args, *NEG]) == 0
    changed = [
        img["negative_kind"]
        for img, _ in _negatives(dataset)
        if not np.array_equal(_pixels(dataset, img), _pixels(other, img))
    ]
    assert set(changed) == set(KINDS)


def test_negatives_only_writes_a_held_out_negative_set(tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "held_out"
    kinds = "black,noise,gradient,stripes"
    argv = ["--out", str(out), "--negatives-only", "--negative-frames", "6", "--negative-kinds", kinds]
    assert main([*argv, "--size", str(SIZE), "--bit-depth", "16", "--quiet"]) == 0
    coco = _coco(out)
    summary = json.loads((out / "dataset.json").read_text())
    assert len(coco["images"]) == 6 and all(i["negative"] for i in coco["images"])
    assert {i["negative_kind"] for i in coco["images"]} == set(kinds.split(","))
    assert summary["negatives_only"] is True and summary["positives"] == 0 and summary["cases"] == 0
    assert sum(summary["negatives"]["per_kind"].values()) == 6 and "ct_bank" not in summary
    assert all(_pixels(out, i).dtype == np.uint16 for i in coco["images"])
    white = tmp_path / "w"
    one_white = ["--negatives-only", "--negative-frames", "1", "--negative-kinds", "white"]
    assert main(["--out", str(white), *one_white, "--size", str(SIZE), "--bit-depth", "16", "--quiet"]) == 0
    assert _pixels(white, _coco(white)["images"][0]).mean() > 0.94 * 65535  # full 16-bit scale
    for bad, message in (
        (["--negatives-only"], "--negative-frames"),
        (["--negatives", "1.0"], "--negatives"),
        (["--negative-frames", "-1"], "--negative-frames"),
        (["--negative-kinds", "lasso"], "--negative-kinds"),
        (["--test-split", "--negative-frames", "5"], "test split"),
        (["--negatives", "0.1", "--negative-frames", "5"], "not allowed"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["--out", str(tmp_path / "x"), *bad])
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_negatives_fraction_is_the_share_of_all_frames_written(tmp_path: Path):
    out = tmp_path / "f"
    argv = ["--cases", "2", "--frames-per-case", "4", "--negatives", "0.2", "--negative-kinds", "grey,noise"]
    assert main(["--out", str(out), *argv, "--size", str(SIZE), "--quiet"]) == 0
    coco = _coco(out)
    negatives = [i for i in coco["images"] if i.get("negative")]
    assert len(coco["images"]) == 10 and len(negatives) == 2  # 8 positives: 2 / 10 = 0.2


def test_deviceless_scenes_remove_every_device_and_keep_the_anatomy():
    bank = ct_bank(COARSE_MM)
    state = DeliveryState(5.0, retraction_mm=10.0)
    t = 0.7
    for scene, plain in ((CTScene, DevicelessCTScene), (Scene, DevicelessScene)):
        if scene is CTScene:
            case = ct_case(5, bank.volumes.root, lao_deg=15.0)
            full, bare = scene(case, bank, 2 * SIZE), plain(case, bank, 2 * SIZE)
        else:
            case = sample_case(5, lao_deg=15.0)
            full, bare = scene(case, 2 * SIZE), plain(case, 2 * SIZE)
        with_devices = full.attenuation(t, state, 0.0).copy()
        without = bare.attenuation(t, state, 0.0).copy()
        diff = with_devices - without
        assert diff.min() > -1e-4  # removing devices only removes attenuation
        kp, _ = full.keypoints(t, state)
        for k in (Kp.CD, Kp.CP, Kp.PT):  # delivery system, pigtail
            x, y = np.floor(kp[k]).astype(int)
            assert diff[y - 1 : y + 2, x - 1 : x + 2].max() > 0.1, f"{k.name} still drawn"
        assert (diff > 1e-3).mean() < 0.3  # the body is the same elsewhere
        assert without.std() > 0.05  # and it is there: body, lungs, heart
        # the rendered frame is an image of that body, deterministic for its noise seed
        a, b = bare.render(t, state, 0.0, 17), bare.render(t, state, 0.0, 17)
        assert np.array_equal(a, b) and a.std() > 5
