"""``tavi-perception run`` on recordings written here: outputs, summary, calibration, presets, bad input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from ros_graph import run_cli
from rosbags.rosbag2 import Reader
from tavi_msgs.msg import Guidance, KeypointArray

from tavi_perception.core.pipeline import SHIPPED_REFINE_MODEL, SHIPPED_ROOT_REFINE_MODEL, shipped_model_path
from tavi_perception.devices import load_presets
from tavi_perception.recordings.synthetic import simulated_frames, write_xa_cine
from tavi_perception.ros.bagtypes import typestore
from tavi_perception.runners.run import main as run_main
from tavi_perception.sim import DeliveryState, ProcedureSimulator
from tavi_perception.sim.contrast import ContrastSchedule, Injection

FRAMES = 8


@pytest.fixture(scope="module")
def cine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 512² 12-bit XA cine of simulator frames, scale at the isocentre 0.3 x 800 / 1200 mm."""
    images, _ = simulated_frames(FRAMES, seed=3, size_px=512, bit_depth=16)
    return write_xa_cine(tmp_path_factory.mktemp("cine") / "xa.dcm", images >> 4, bits_stored=12)


def _run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, dict | None, str]:
    code = run_main([*args, "--json", "--no-progress"])
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1]) if code == 0 else None
    return code, summary, err


def test_run_writes_every_output_and_a_json_summary(cine: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code, summary, _ = _run(capsys, str(cine), "--out", str(out), "--bag-images")
    assert code == 0
    assert summary["frames"] == FRAMES
    assert summary["processed"] + summary["rejected"] + summary["repeats"] == FRAMES
    assert 0.0 <= summary["valid_fraction"] <= 1.0
    assert summary["mm_per_px"] == pytest.approx(0.2) and summary["calibrated"] is True
    assert summary["calibration_source"].startswith("DICOM ImagerPixelSpacing 0.3 mm")
    assert summary["fps"] == pytest.approx(1000 / 66.67)
    assert summary["processing_fps"] > 0
    expected = ["bag", "depth.png", "frames.csv", "keypoints.png", "overlay.mp4", "report.md", "run.json"]
    assert summary["outputs"] == expected
    assert sorted(p.name for p in out.iterdir()) == expected  # no staging folder left

    with (out / "frames.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == list(range(FRAMES))
    assert float(rows[1]["t_s"]) == pytest.approx(0.06667)
    assert all(r["calibrated"] == "1" for r in rows if r["verdict"] != "repeat")

    video = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    ok, first = video.read()
    assert ok and first.shape == (512, 512, 3)
    video.release()

    with Reader(out / "bag") as reader:
        assert reader.topics["/guidance"].msgcount == summary["processed"] + summary["rejected"]
        assert reader.topics["/fluoro/image"].msgcount == FRAMES
        guidance = [
            deserialize_message(bytes(raw), Guidance)
            for c, _, raw in reader.messages()
            if c.topic == "/guidance"
        ]
        keypoints = [
            deserialize_message(bytes(raw), KeypointArray)
            for c, _, raw in reader.messages()
            if c.topic == "/keypoints"
        ]
        tf = [
            typestore().deserialize_cdr(raw, c.msgtype) for c, _, raw in reader.messages() if c.topic == "/tf"
        ]
    answered = [r for r in rows if r["verdict"] != "repeat"]
    for msg, row in zip(guidance, answered, strict=True):
        assert msg.header.frame_id == "fluoro"
        assert msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec == pytest.approx(
            float(row["t_s"]), abs=1e-6
        )
        assert msg.valid == (row["valid"] == "1") and msg.invalid_reason == row["invalid_reason"]
        depth = float(row["depth_mm"]) if row["depth_mm"] else math.nan
        assert (math.isnan(msg.depth_mm) and math.isnan(depth)) or msg.depth_mm == pytest.approx(
            depth, rel=1e-5
        )
    assert len(keypoints) == summary["processed"]
    assert keypoints[0].image_width == 512 and len(keypoints[0].keypoints) == 11
    assert len(tf) == sum(m.annulus_valid for m in guidance)
    for message in tf:
        assert message.transforms[0].child_frame_id == "annulus"
        assert message.transforms[0].header.frame_id == "fluoro_mm"

    record = json.loads((out / "run.json").read_text())
    assert record["recording"]["primary_angle_deg"] == 30.0
    report = (out / "report.md").read_text()
    assert "![Depth over time](depth.png)" in report and "calibrated" in report


def test_options_override_the_scale_and_a_preset_sets_the_frame_height(
    cine: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    args = (
        str(cine),
        "--out",
        str(out),
        "--mm-per-px",
        "0.25",
        "--device-preset",
        "evolut-r-26",
        "--no-video",
    )
    code, summary, err = _run(capsys, *args, "--no-bag", "--max-frames", "3")
    assert code == 0
    assert summary["frames"] == 3
    assert summary["mm_per_px"] == 0.25
    assert summary["calibration_source"].startswith("option --mm-per-px 0.25 (overrides DICOM")
    record = json.loads((out / "run.json").read_text())
    assert record["device_preset"] == "evolut-r-26"
    assert record["geometry"]["valve_frame_height_mm"] == 55.0
    assert "cp_cd_length_mm unknown" in err
    assert not (out / "overlay.mp4").exists() and not (out / "bag").exists()


def test_an_uncalibrated_video_runs_and_says_so_in_every_guidance(tmp_path: Path, capsys) -> None:
    images, _ = simulated_frames(3, seed=5, size_px=256)
    writer = cv2.VideoWriter(str(tmp_path / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (256, 256))
    for image in images:
        writer.write(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    writer.release()
    out = tmp_path / "out"
    code, summary, err = _run(capsys, str(tmp_path / "v.mp4"), "--out", str(out), "--no-video", "--no-bag")
    assert code == 0
    assert summary["calibrated"] is False and summary["calibration_source"].startswith("default")
    assert "warning: uncalibrated: a video file carries no scale" in err
    with (out / "frames.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["verdict"] != "repeat"]
    assert rows and all(r["calibrated"] == "0" and r["valid"] == "0" for r in rows)


def test_a_bad_file_exits_non_zero_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00" * 10)
    out = tmp_path / "out"
    result = run_cli("run", str(bad), "--out", str(out), "--no-progress")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"run: {bad}: ")
    assert not out.exists()


def test_a_failed_run_leaves_the_previous_outputs_and_no_partial_files(
    cine: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    (out).mkdir()
    (out / "frames.csv").write_text("previous\n")
    truncated = tmp_path / "truncated.dcm"
    data = cine.read_bytes()
    truncated.write_bytes(data[: len(data) - 1000])
    code, _, err = _run(capsys, str(truncated), "--out", str(out))
    assert code == 1 and "truncated pixel data" in err
    assert sorted(p.name for p in out.iterdir()) == ["frames.csv"]
    assert (out / "frames.csv").read_text() == "previous\n"


def test_a_balloon_expandable_preset_warns_that_retraction_does_not_apply(
    cine: Path, tmp_path: Path, capsys
) -> None:
    args = (
        str(cine),
        "--out",
        str(tmp_path / "o"),
        "--device-preset",
        "sapien3-26",
        "--no-video",
        "--no-bag",
    )
    code, _, err = _run(capsys, *args, "--max-frames", "1")
    assert code == 0
    assert "device preset sapien3-26: balloon-expandable, no capsule" in err
    assert json.loads((tmp_path / "o" / "run.json").read_text())["geometry"]["valve_frame_height_mm"] == 20.0


def test_an_unknown_device_preset_lists_the_known_ones(cine: Path, tmp_path: Path, capsys) -> None:
    code, _, err = _run(capsys, str(cine), "--out", str(tmp_path / "o"), "--device-preset", "nope")
    assert code == 1
    assert "unknown device preset 'nope'; known: acurate-neo2-l" in err


def test_every_device_preset_is_complete_and_null_means_unknown() -> None:
    presets = load_presets()
    assert {"sapien3-26", "evolut-r-34", "acurate-neo2-m", "navitor-29"} <= set(presets)
    for preset in presets.values():
        assert preset.label and preset.source and preset.expansion in {"self-expanding", "balloon-expandable"}
        for value in (preset.frame_height_mm, preset.cp_cd_closed_length_mm, preset.catheter_fr):
            assert value is None or value > 0
        params, unknown = preset.geometry_params()
        if preset.frame_height_mm is None:
            assert "valve_frame_height_mm" in unknown and "frame height" in preset.notes
        else:
            assert params.valve_frame_height_mm == preset.frame_height_mm
    heights = [presets[f"sapien3-{s}"].frame_height_mm for s in (20, 23, 26, 29)]
    assert heights == [15.5, 18.0, 20.0, 22.5]


def test_a_recording_that_fails_midway_leaves_no_output_folder(tmp_path: Path, capsys) -> None:
    images, _ = simulated_frames(3, seed=2, size_px=256)
    for i, image in enumerate(images):
        cv2.imwrite(str(tmp_path / f"{i}.png"), image)
    cv2.imwrite(str(tmp_path / "3.png"), images[0][:128])  # a frame of another size ends the reading
    out = tmp_path / "out"
    code, _, err = _run(capsys, str(tmp_path), "--out", str(out), "--fps", "15")
    assert code == 1
    assert (
        err.strip().splitlines()[-1]
        == f"run: {tmp_path / '3.png'}: size (256, 128) differs from the first image's (256, 256)"
    )
    assert not out.exists()


def test_a_region_of_interest_crops_a_screen_capture_and_keeps_input_pixels(tmp_path: Path, capsys) -> None:
    images, _ = simulated_frames(3, seed=4, size_px=256)
    plain, screen = tmp_path / "plain", tmp_path / "screen"
    plain.mkdir()
    screen.mkdir()
    for i, image in enumerate(images):
        cv2.imwrite(str(plain / f"{i}.png"), image)
        canvas = np.zeros((300, 340), np.uint8)
        canvas[20:276, 60:316] = image
        cv2.imwrite(str(screen / f"{i}.png"), canvas)
    rows = {}
    for name, extra in (("plain", []), ("screen", ["--roi", "60", "20", "256", "256"])):
        out = tmp_path / f"out_{name}"
        code, _, _ = _run(capsys, str(tmp_path / name), "--out", str(out), "--no-video", "--no-bag", *extra)
        assert code == 0
        with (out / "frames.csv").open() as f:
            rows[name] = list(csv.DictReader(f))
    assert json.loads((tmp_path / "out_screen" / "run.json").read_text())["roi"] == [60, 20, 256, 256]
    for plain_row, screen_row in zip(rows["plain"], rows["screen"], strict=True):
        assert plain_row["verdict"] == screen_row["verdict"] == "admitted"
        assert float(screen_row["CT_x_px"]) == pytest.approx(float(plain_row["CT_x_px"]) + 60, abs=1e-5)
        assert float(screen_row["CT_y_px"]) == pytest.approx(float(plain_row["CT_y_px"]) + 20, abs=1e-5)


def _plain_and_refined(capsys, tmp_path: Path, cine: Path, flag: str) -> dict[str, list[dict[str, str]]]:
    """frames.csv rows of ``run`` over ``cine`` without and with ``flag`` (in ``plain/``, ``refined/``)."""
    rows = {}
    for name, extra in (("plain", ()), ("refined", (flag,))):
        out = tmp_path / name
        code, _, _ = _run(capsys, str(cine), "--out", str(out), "--no-video", "--no-bag", *extra)
        assert code == 0
        with (out / "frames.csv").open() as f:
            rows[name] = list(csv.DictReader(f))
    return rows


def test_refine_reads_the_frame_edges_again_and_the_record_names_the_model(tmp_path: Path, capsys) -> None:
    sim = ProcedureSimulator(0, image_size=256)
    sim.place(DeliveryState(4.0, 15.0))  # the valve half out: both frame edges in every frame
    cine = write_xa_cine(tmp_path / "valve.dcm", np.stack([sim.step().image for _ in range(4)]))
    rows = _plain_and_refined(capsys, tmp_path, cine, "--refine")
    refined_record = json.loads((tmp_path / "refined" / "run.json").read_text())
    assert refined_record["refine_model"] == str(shipped_model_path(SHIPPED_REFINE_MODEL))
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["refine_model"] is None
    assert "valve refinement | `" in (tmp_path / "refined" / "report.md").read_text()
    for plain, refined in zip(rows["plain"], rows["refined"], strict=True):
        assert refined["FE1_x_px"] != plain["FE1_x_px"] or refined["FE1_y_px"] != plain["FE1_y_px"]


def test_refine_root_reads_the_annulus_landmarks_again_and_the_record_names_the_model(
    tmp_path: Path, capsys
) -> None:
    sim = ProcedureSimulator(0, image_size=256, contrast=ContrastSchedule((Injection(0.0, plateau_s=600.0),)))
    images = [f.image for f in (sim.step() for _ in range(40)) if f.contrast > 0.95][:4]
    cine = write_xa_cine(tmp_path / "contrast.dcm", np.stack(images))
    rows = _plain_and_refined(capsys, tmp_path, cine, "--refine-root")
    refined_record = json.loads((tmp_path / "refined" / "run.json").read_text())
    assert refined_record["root_refine_model"] == str(shipped_model_path(SHIPPED_ROOT_REFINE_MODEL))
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["root_refine_model"] is None
    assert "root refinement | `" in (tmp_path / "refined" / "report.md").read_text()
    assert len(images) == 4

    def shift_px(name: str) -> float:
        """The largest move of ``name``'s tracked position between the two runs."""
        return max(
            math.hypot(
                float(r[f"{name}_x_px"]) - float(p[f"{name}_x_px"]),
                float(r[f"{name}_y_px"]) - float(p[f"{name}_y_px"]),
            )
            for p, r in zip(rows["plain"], rows["refined"], strict=True)
        )

    # the tip is not read again: it moves only by its share of the tracker's common motion
    assert min(shift_px("AA1"), shift_px("STJ2")) > max(0.2, 3.0 * shift_px("CT"))
