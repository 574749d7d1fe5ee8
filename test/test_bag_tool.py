"""`tavi-perception bag record|play|info` on real rosbag2 files (MCAP and sqlite3) over real DDS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rclpy.serialization import deserialize_message, serialize_message
from ros_graph import Probe, run_cli
from rosbags.rosbag2 import Reader, Writer
from tavi_msgs.msg import Guidance

from tavi_perception.ros.bag import STORAGES, parse_remaps
from tavi_perception.ros.bagtypes import typestore


def _guidance(i: int) -> Guidance:
    msg = Guidance(depth_mm=0.5 * i, valid=i % 2 == 0, invalid_reason="" if i % 2 == 0 else f"reason {i}")
    msg.header.frame_id = "fluoro"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + i, 17 * i
    return msg


def _write_bag(path: Path, count: int, period_s: float, storage: str = "mcap") -> None:
    with Writer(path, version=9, storage_plugin=STORAGES[storage]) as writer:
        conn = writer.add_connection("/guidance", "tavi_msgs/msg/Guidance", typestore=typestore())
        for i in range(count):
            writer.write(conn, int(1e18 + i * period_s * 1e9), serialize_message(_guidance(i)))


def _bag_guidance(path: Path) -> list[Guidance]:
    with Reader(path) as reader:
        return [deserialize_message(bytes(raw), Guidance) for _, _, raw in reader.messages()]


def _run(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return run_cli("bag", *args, timeout_s=timeout_s)


def test_typestore_hashes_equal_the_ones_rosidl_generated() -> None:
    share = Path(sys.prefix) / "share" / "tavi_msgs" / "msg"
    for name in ("Guidance", "Keypoint", "KeypointArray", "ManipulatorCommand"):
        generated = json.loads((share / f"{name}.json").read_text())["type_hashes"]
        expected = next(h["hash_string"] for h in generated if h["type_name"] == f"tavi_msgs/msg/{name}")
        assert typestore().hash_rihs01(f"tavi_msgs/msg/{name}") == expected


@pytest.mark.ros
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_record_writes_every_message_of_the_live_topic(tmp_path: Path, storage: str) -> None:
    out = tmp_path / f"rec_{storage}"
    with Probe() as probe:
        pub = probe.node.create_publisher(Guidance, "guidance", 10)
        sent = iter(range(10_000))
        probe.node.create_timer(0.02, lambda: pub.publish(_guidance(next(sent))))
        args = ["bag", "record", "guidance", "-o", str(out), "-s", storage, "--max-messages", "25"]
        recorder = probe.start("tavi_perception.cli", args=[*args, "--timeout", "30", "--no-progress"])
        probe.spin_until(lambda: not recorder.alive(), timeout_s=60)
        code, output = recorder.wait(timeout_s=10)
    assert code == 0, output
    recorded = _bag_guidance(out)
    assert len(recorded) >= 25
    first = recorded[0].header.stamp.sec - 1000
    assert recorded[:25] == [_guidance(first + i) for i in range(25)]  # contiguous, content intact
    summary = json.loads(_run("info", str(out), "--json").stdout.strip().splitlines()[-1])
    assert summary["storage"] == storage
    assert summary["topics"]["/guidance"]["type"] == "tavi_msgs/msg/Guidance"
    assert summary["topics"]["/guidance"]["count"] == len(recorded)


@pytest.mark.ros
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_play_publishes_every_message_unchanged_on_the_remapped_topic(tmp_path: Path, storage: str) -> None:
    bag = tmp_path / "bag"
    _write_bag(bag, count=12, period_s=0.02, storage=storage)
    with Probe() as probe:
        received = probe.collect(Guidance, "replayed")
        player = probe.start(
            "tavi_perception.cli",
            args=[
                "bag",
                "play",
                str(bag),
                "--remap",
                "guidance:=replayed",
                "--wait-for",
                "replayed",
                "--no-progress",
            ],
        )
        assert probe.spin_until(lambda: len(received) == 12, 60, watch=[]), f"got {len(received)} of 12"
        code, output = player.wait(timeout_s=30)
    assert code == 0, output
    assert received == [_guidance(i) for i in range(12)]  # header stamps and every field preserved


@pytest.mark.ros
def test_play_keeps_the_recorded_timing_scaled_by_the_rate(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    period_s, count, rate = 0.1, 11, 2.0
    _write_bag(bag, count=count, period_s=period_s)
    arrivals: list[float] = []
    with Probe() as probe:
        probe.node.create_subscription(
            Guidance,
            "guidance",
            lambda _: arrivals.append(probe.node.get_clock().now().nanoseconds * 1e-9),
            10,
        )
        probe.start(
            "tavi_perception.cli",
            args=["bag", "play", str(bag), "--rate", str(rate), "--wait-for", "guidance", "--no-progress"],
        )
        assert probe.spin_until(lambda: len(arrivals) == count, 60, watch=[])
    # a player never publishes early: the span is at least the recorded span divided by the rate
    assert arrivals[-1] - arrivals[0] >= (count - 1) * period_s / rate - 0.01


@pytest.mark.ros
def test_play_loops_until_interrupted(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    _write_bag(bag, count=3, period_s=0.01)
    with Probe() as probe:
        received = probe.collect(Guidance, "guidance")
        player = probe.start(
            "tavi_perception.cli",
            args=["bag", "play", str(bag), "--loop", "--wait-for", "guidance", "--no-progress"],
        )
        assert probe.spin_until(lambda: len(received) >= 9, timeout_s=60)
        assert player.alive()
    assert [m.header.stamp.sec for m in received[:9]] == [1000, 1001, 1002] * 3


def test_info_and_play_reject_a_missing_bag_with_a_clear_error(tmp_path: Path) -> None:
    for action in ("info", "play"):
        result = _run(action, str(tmp_path / "nope"))
        assert result.returncode == 1
        assert "does not exist" in result.stderr


def test_remaps_must_name_both_sides() -> None:
    assert parse_remaps(["image:=/fluoro/image"]) == {"/image": "/fluoro/image"}
    with pytest.raises(ValueError, match="from:=to"):
        parse_remaps(["image"])
    with pytest.raises(ValueError, match="empty"):
        parse_remaps([":=x"])
