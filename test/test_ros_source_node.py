"""``tavi-perception publish``: a recording as sensor_msgs/Image over real DDS, with its calibration."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_graph import Probe, run_cli
from sensor_msgs.msg import Image
from std_msgs.msg import Float64
from tavi_msgs.msg import Guidance

from tavi_perception.recordings.synthetic import write_xa_cine
from tavi_perception.ros import perception_node
from tavi_perception.ros.source_node import CALIBRATION_TOPIC

LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def test_the_calibration_topic_is_the_one_perception_listens_to() -> None:
    assert CALIBRATION_TOPIC == perception_node.CALIBRATION_TOPIC


@pytest.mark.ros
def test_publish_sends_every_frame_at_recording_stamps_and_latches_the_calibration(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 4096, size=(4, 16, 20), dtype=np.uint16)
    cine = write_xa_cine(tmp_path / "xa.dcm", frames, bits_stored=12, frame_time_ms=50.0)
    args = ["publish", str(cine), "--loop", "--stamps", "recording", "--wait-for-subscriber", "--no-progress"]
    with Probe() as probe:
        received = probe.collect(
            Image, "fluoro/image", QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        )
        source = probe.start("tavi_perception.cli", args=args)
        assert probe.spin_until(lambda: len(received) >= 8, timeout_s=60), f"got {len(received)} images"
        # a subscriber that joins late still gets the scale (transient local)
        scale = probe.collect(Float64, CALIBRATION_TOPIC, LATCHED)
        assert probe.spin_until(lambda: len(scale) == 1, timeout_s=30)
        assert source.alive()  # --loop: plays until interrupted
        output = source.stop()
    assert scale[0].data == pytest.approx(0.2)
    assert (
        "calibration/mm_per_px = 0.2 mm/px (DICOM ImagerPixelSpacing 0.3 mm x SOD 800 mm / SID 1200 mm)"
        in output
    )
    stamps_ns = [m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for m in received[:4]]
    assert np.diff(stamps_ns).tolist() == [50_000_000] * 3  # the recording's frame times, exactly
    for msg, expected in zip(received[:4], frames, strict=True):
        assert (msg.encoding, msg.width, msg.height, msg.header.frame_id) == ("mono16", 20, 16, "fluoro")
        np.testing.assert_array_equal(np.frombuffer(bytes(msg.data), "<u2").reshape(16, 20), expected)
    np.testing.assert_array_equal(np.frombuffer(bytes(received[4].data), "<u2").reshape(16, 20), frames[0])


@pytest.mark.ros
def test_publish_an_uncalibrated_folder_says_so_and_remaps_like_any_node(tmp_path: Path) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((8, 8), 40 * i, np.uint8))
    args = ["publish", str(tmp_path), "--fps", "30", "--wait-for-subscriber", "--no-progress"]
    with Probe() as probe:
        received = probe.collect(Image, "/camera/image")
        before_ns = probe.node.get_clock().now().nanoseconds
        source = probe.start(
            "tavi_perception.cli", args=[*args, "--ros-args", "-r", "fluoro/image:=/camera/image"]
        )
        assert probe.spin_until(lambda: len(received) == 3, timeout_s=60, watch=[])
        after_ns = probe.node.get_clock().now().nanoseconds
        code, output = source.wait(timeout_s=30)
    stamps_ns = [m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for m in received]
    assert before_ns < stamps_ns[0] < stamps_ns[1] < stamps_ns[2] < after_ns  # the send times
    assert code == 0, output
    assert "nothing on calibration/mm_per_px: uncalibrated: image files carry no scale" in output
    assert [int(m.data[0]) for m in received] == [0, 40, 80]
    assert all(m.encoding == "mono8" for m in received)


def test_publish_rejects_a_bad_recording_in_one_line(tmp_path: Path) -> None:
    result = run_cli("publish", str(tmp_path / "missing.dcm"), "--no-progress")
    assert result.returncode == 1
    assert result.stderr.strip() == f"publish: {tmp_path / 'missing.dcm'}: no such file or folder"


@pytest.mark.ros
def test_perception_measures_a_published_recording_at_its_dicom_scale(perception_cine: Path) -> None:
    with Probe() as probe:
        guidance = probe.collect(
            Guidance, "guidance", QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        )
        reliable = ["-p", "image_qos_reliability:=reliable", "-p", "image_qos_depth:=10"]  # no frame dropped
        node = probe.start(
            "tavi_perception.ros.perception_node", ros_args=["-r", "image:=fluoro/image", *reliable]
        )
        assert probe.wait_matched("guidance", 60)
        source = probe.start(
            "tavi_perception.cli",
            args=["publish", str(perception_cine), "--wait-for-subscriber", "--no-progress"],
        )
        assert probe.spin_until(lambda: len(guidance) == 6, timeout_s=60, watch=[node])
        code, output = source.wait(timeout_s=30)
    assert code == 0, output
    for msg in guidance:  # from the first frame on: the scale was acknowledged before any image was sent
        assert msg.calibrated and msg.calibration_source == "topic calibration/mm_per_px 0.4"
