"""`tavi-perception bag record|play|info|convert` on real rosbag2 files (MCAP and sqlite3) over real DDS,
and on bags made elsewhere (unknown types, ROS 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from ros_graph import REPO, Probe, run_cli
from rosbags.rosbag2 import Reader, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from sensor_msgs.msg import Image
from std_msgs.msg import Float64
from tavi_msgs.msg import Guidance

from tavi_perception.recordings.synthetic import write_xa_cine
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


def _play(bag: Path, count: int, *options: str, topic: str = "guidance") -> tuple[list[Guidance], str]:
    """``bag play`` of ``bag`` with ``options`` until ``count`` Guidance messages arrived on ``topic``:
    the messages and the player's output, once it exited with 0."""
    with Probe() as probe:
        received = probe.collect(Guidance, topic)
        player = probe.start(
            "tavi_perception.cli",
            args=["bag", "play", str(bag), *options, "--wait-for", topic, "--no-progress"],
        )
        assert probe.spin_until(lambda: len(received) == count, 60, watch=[]), (
            f"got {len(received)} of {count}"
        )
        code, output = player.wait(timeout_s=30)
    assert code == 0, output
    return received, output


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
    received, _ = _play(bag, 12, "--remap", "guidance:=replayed", topic="replayed")
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
            # the publisher's write time (DDS source timestamp), not the arrival: a loaded receiver
            # that delivers the first message late would shrink the measured span
            lambda _, info: arrivals.append(info["source_timestamp"] * 1e-9),
            10,
        )
        probe.start(
            "tavi_perception.cli",
            args=["bag", "play", str(bag), "--rate", str(rate), "--wait-for", "guidance", "--no-progress"],
        )
        assert probe.spin_until(lambda: len(arrivals) == count, 60, watch=[])
    # a player never publishes early: the span of its writes is at least the recorded span / the rate
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


def _tf_message(i: int) -> object:
    """A tf2_msgs/TFMessage in the typestore (tf2_msgs has no PyPI wheel, so no rclpy class here)."""
    store = typestore()
    types = store.types
    stamp = types["builtin_interfaces/msg/Time"](sec=1000 + i, nanosec=0)
    transform = types["geometry_msgs/msg/TransformStamped"](
        header=types["std_msgs/msg/Header"](stamp=stamp, frame_id="fluoro_mm"),
        child_frame_id="annulus",
        transform=types["geometry_msgs/msg/Transform"](
            translation=types["geometry_msgs/msg/Vector3"](x=0.01 * i, y=0.0, z=0.0),
            rotation=types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        ),
    )
    return types["tf2_msgs/msg/TFMessage"](transforms=[transform])


@pytest.mark.ros
def test_play_skips_topics_whose_type_is_not_installed_and_names_them(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    with Writer(bag, version=9, storage_plugin=STORAGES["mcap"]) as writer:
        guidance = writer.add_connection("/guidance", "tavi_msgs/msg/Guidance", typestore=typestore())
        tf = writer.add_connection("/tf", "tf2_msgs/msg/TFMessage", typestore=typestore())
        for i in range(5):
            writer.write(guidance, int(1e18 + i * 1e7), serialize_message(_guidance(i)))
            writer.write(
                tf, int(1e18 + i * 1e7), bytes(typestore().serialize_cdr(_tf_message(i), tf.msgtype))
            )
    received, output = _play(bag, 5)
    assert "warning: skipping /tf: message type tf2_msgs/msg/TFMessage is not installed here" in output
    assert "published 5 messages" in output
    assert received == [_guidance(i) for i in range(5)]


def _ros1_bag(path: Path, count: int) -> list[tuple[int, bytes]]:
    """A ROS 1 bag of mono8 images on /fluoro/image (with the ROS 1 header's seq); returns (stamp, data)."""
    from rosbags.rosbag1 import Writer as Writer1
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    types = store.types
    written = []
    with Writer1(path) as writer:
        conn = writer.add_connection("/fluoro/image", "sensor_msgs/msg/Image", typestore=store)
        for i in range(count):
            data = bytes([i] * 12)
            stamp = types["builtin_interfaces/msg/Time"](sec=2000 + i, nanosec=5)
            header = types["std_msgs/msg/Header"](seq=i, stamp=stamp, frame_id="fluoro")
            image = types["sensor_msgs/msg/Image"](
                header=header,
                height=3,
                width=4,
                encoding="mono8",
                is_bigendian=0,
                step=4,
                data=np.frombuffer(data, np.uint8),
            )
            writer.write(conn, int(2e18 + i * 1e7), store.serialize_ros1(image, conn.msgtype))
            written.append((2000 + i, data))
    return written


@pytest.mark.ros
def test_play_reads_ros1_bags_and_converts_their_messages(tmp_path: Path) -> None:
    bag = tmp_path / "old.bag"
    written = _ros1_bag(bag, 4)
    summary = json.loads(_run("info", str(bag), "--json").stdout.strip().splitlines()[-1])
    assert summary["storage"] == "rosbag1"
    topic = summary["topics"]["/fluoro/image"]
    assert (topic["type"], topic["count"], topic["rate_hz"]) == (
        "sensor_msgs/msg/Image",
        4,
        pytest.approx(100.0, abs=0.01),
    )
    with Probe() as probe:
        received = probe.collect(Image, "fluoro/image")
        player = probe.start(
            "tavi_perception.cli",
            args=["bag", "play", str(bag), "--wait-for", "fluoro/image", "--no-progress"],
        )
        assert probe.spin_until(lambda: len(received) == 4, 60, watch=[]), f"got {len(received)} of 4"
        code, output = player.wait(timeout_s=30)
    assert code == 0, output
    for msg, (sec, data) in zip(received, written, strict=True):
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (sec, 5, "fluoro")
        assert (msg.width, msg.height, msg.encoding, bytes(msg.data)) == (4, 3, "mono8", data)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_convert_writes_a_recordings_frames_and_its_latched_calibration(tmp_path: Path, storage: str) -> None:
    frames = np.random.default_rng(0).integers(0, 4096, size=(3, 16, 20), dtype=np.uint16)
    cine = write_xa_cine(tmp_path / "xa.dcm", frames, bits_stored=12, frame_time_ms=50.0)
    out = tmp_path / "converted"
    result = _run("convert", str(cine), str(out), "--start", "1700000000.5", "-s", storage, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted", "xa.dcm"]  # nothing partial left
    suffix = {"mcap": ".mcap", "sqlite3": ".db3"}[storage]
    assert sorted(p.name for p in out.iterdir()) == ["converted" + suffix, "metadata.yaml"]
    with Reader(out) as reader:
        calibration = next(c for c in reader.connections if c.topic == "/calibration/mm_per_px")
        assert calibration.ext.offered_qos_profiles[0].durability.name == "TRANSIENT_LOCAL"
        messages = [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]
    scale = [
        deserialize_message(raw, Float64).data for topic, _, raw in messages if topic == calibration.topic
    ]
    assert scale == [pytest.approx(0.2)]
    images = [(t, deserialize_message(raw, Image)) for topic, t, raw in messages if topic == "/fluoro/image"]
    assert len(images) == 3
    for i, (t_ns, msg) in enumerate(images):
        expected_ns = 1_700_000_000_500_000_000 + i * 50_000_000
        assert t_ns == expected_ns
        assert msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec == expected_ns
        assert (msg.encoding, msg.width, msg.height, msg.header.frame_id) == ("mono16", 20, 16, "fluoro")
        np.testing.assert_array_equal(np.frombuffer(bytes(msg.data), "<u2").reshape(16, 20), frames[i])
    again = _run("convert", str(cine), str(out), "--no-progress")
    assert again.returncode == 1 and "exists already" in again.stderr


def test_convert_refuses_a_bad_recording_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_text("nothing")
    result = _run("convert", str(bad), str(tmp_path / "out"), "--no-progress")
    assert result.returncode == 1
    assert result.stderr.strip() == f"bag convert: {bad}: not a DICOM file"
    assert not (tmp_path / "out").exists()


@pytest.mark.ros
def test_play_converts_messages_recorded_with_an_older_definition(tmp_path: Path) -> None:
    msg_text = (REPO / "tavi_msgs" / "msg" / "Guidance.msg").read_text()
    added = (["calibrated"], ["calibration_source"])  # fields the installed Guidance has, the bag's not
    kept = [line for line in msg_text.splitlines() if line.split("#")[0].split()[1:2] not in added]
    old_text = "\n".join(kept)
    old_store = get_typestore(Stores.ROS2_KILTED)
    old_store.register(get_types_from_msg(old_text, "tavi_msgs/msg/Guidance"))
    old_cls = old_store.types["tavi_msgs/msg/Guidance"]
    assert not hasattr(old_cls(**_old_guidance_fields(old_store, 0)), "calibrated")
    bag = tmp_path / "old"
    with Writer(bag, version=9, storage_plugin=STORAGES["mcap"]) as writer:
        conn = writer.add_connection("/guidance", "tavi_msgs/msg/Guidance", typestore=old_store)
        for i in range(3):
            message = old_cls(**_old_guidance_fields(old_store, i))
            writer.write(conn, int(1e18 + i * 1e7), bytes(old_store.serialize_cdr(message, conn.msgtype)))
    received, output = _play(bag, 3)
    assert "warning: /guidance: the bag's tavi_msgs/msg/Guidance differs from the installed one" in output
    for i, msg in enumerate(received):
        assert (msg.header.stamp.sec, msg.depth_mm, msg.invalid_reason) == (1000 + i, 0.5 * i, f"reason {i}")
        assert (msg.calibrated, msg.calibration_source) == (False, "")


def _old_guidance_fields(store: object, i: int) -> dict:
    """Every field of the bag's (older) Guidance with values, as a rosbags message takes them."""
    types = store.types
    fields = {}
    for name, (_, args) in store.fielddefs["tavi_msgs/msg/Guidance"][1]:
        if name == "header":
            stamp = types["builtin_interfaces/msg/Time"](sec=1000 + i, nanosec=0)
            fields[name] = types["std_msgs/msg/Header"](stamp=stamp, frame_id="fluoro")
        elif name == "depth_mm":
            fields[name] = 0.5 * i
        elif name == "invalid_reason":
            fields[name] = f"reason {i}"
        else:
            base = args[0] if isinstance(args, tuple) else ""
            fields[name] = {"string": "", "bool": False}.get(base, 0.0 if base.startswith("float") else 0)
    return fields


@pytest.mark.ros
def test_a_converted_recording_replays_into_perception_on_the_bag_clock(
    tmp_path: Path, perception_cine: Path
) -> None:
    """The replay recipe of the README: bag time on /clock, perception on sim time, the scale from the bag."""
    bag = tmp_path / "bag"
    assert _run("convert", str(perception_cine), str(bag), "--start", "1000", "--no-progress").returncode == 0
    with Probe() as probe:
        guidance = probe.collect(Guidance, "guidance", 50)
        node = probe.start(
            "tavi_perception.ros.perception_node",
            ros_args=["-r", "image:=fluoro/image", "-p", "use_sim_time:=true"],
        )
        assert probe.wait_matched("guidance", 60)
        wait = ["--wait-for", "fluoro/image", "calibration/mm_per_px"]  # the scale before the first frame
        player = probe.start(
            "tavi_perception.cli", args=["bag", "play", str(bag), "--clock", *wait, "--no-progress"]
        )
        assert probe.spin_until(lambda: not player.alive() and guidance, timeout_s=60, watch=[node])
        code, output = player.wait(timeout_s=10)
    assert code == 0, output
    stamps = {m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for m in guidance}
    assert stamps <= {1_000_000_000_000 + round(i * 1e9 / (1000 / 66.67)) for i in range(6)}
    for msg in guidance:  # none refused as stale or from the future: the node's clock is the bag's
        assert msg.calibrated and msg.calibration_source == "topic calibration/mm_per_px 0.4"
        assert not msg.invalid_reason.startswith(("stale", "stamp")), msg.invalid_reason
