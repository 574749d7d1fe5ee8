"""``tavi-perception bag record|play|info``: rosbag2 files (MCAP or sqlite3) through rosbags, no ros2 CLI.

record  subscribes chosen topics of the live graph as serialized messages (types discovered from the
        graph, QoS matched to the publishers) and writes them with their receive time; stops on Ctrl-C,
        after ``--duration`` seconds of data or ``--max-messages``.
play    publishes a bag's serialized messages with the original timing (or scaled by ``--rate``),
        optionally looping, remapping topics, publishing ``/clock`` and waiting for subscribers first.
        Header stamps inside the messages are never rewritten. Publishers are reliable (they match
        best-effort and reliable subscribers alike) with the recorded durability and depth. Bags made
        elsewhere: a topic whose message type is not installed here (e.g. /tf without tf2_msgs) is
        skipped with a warning naming it; ROS 1 ``.bag`` files are read through rosbags' AnyReader and
        their messages converted to ROS 2 (CDR; the ROS 1 header's ``seq`` dropped); a message whose
        definition changed since the bag was recorded (a tavi_msgs field added) is converted to the
        installed one with a warning (added fields at their defaults).
info    topics, types, counts, rates, duration; ``--json`` prints one JSON object.
convert writes a recording (DICOM cine or series, video, image folder) into a new bag: each frame as
        sensor_msgs/Image (mono8/mono16, frame_id ``fluoro``) on ``fluoro/image``, stamped (header and
        bag time) ``--start`` + the frame's recording time, and the recording's scale, when known, once on
        ``calibration/mm_per_px`` (std_msgs/Float64, transient local, so ``play`` latches it for
        perception_node as ``tavi-perception publish`` does).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from builtin_interfaces.msg import Time
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from rosbags.convert.converter import generate_message_converter, is_same_wireformat
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Connection, QosDurability
from rosbags.rosbag1 import ReaderError as Ros1ReaderError
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Header
from tqdm import tqdm

from tavi_perception.core.pipeline import FrameResult, UnprocessedFrame
from tavi_perception.recordings import Overrides, Recording, RecordingError, open_recording
from tavi_perception.recordings.base import Frame
from tavi_perception.ros import messages
from tavi_perception.ros.bagtypes import bag_qos, msg_class, typestore
from tavi_perception.ros.imaging import numpy_to_image
from tavi_perception.ros.standalone import IsolatedNode, standalone_node

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
_GRAPH_TOPICS = {"/rosout", "/parameter_events"}


def absolute(topic: str) -> str:
    """A topic name made absolute (the tool's node lives in the root namespace)."""
    return topic if topic.startswith("/") else "/" + topic


# --------------------------------------------------------------------------- record


@dataclass
class Recorder:
    """Subscribes topics as they appear in the graph and writes every message to an open bag writer."""

    node: Node
    writer: Writer
    topics: set[str] | None  # absolute names; None: every topic but the graph's own
    counts: dict[str, int] = field(default_factory=dict)
    first_ns: int | None = None
    progress: tqdm | None = None

    def poll_graph(self) -> None:
        """Subscribe every wanted topic that has appeared with a known type since the last poll."""
        for topic, types in self.node.get_topic_names_and_types():
            if topic in self.counts or not types or not self._wanted(topic):
                continue
            try:
                cls = msg_class(types[0])
            except ValueError as err:
                self.node.get_logger().warning(f"not recording {topic}: {err}")
                self.counts[topic] = 0
                continue
            infos = self.node.get_publishers_info_by_topic(topic)
            reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
            latched = bool(infos) and all(
                i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos
            )
            connection = self.writer.add_connection(
                topic, types[0], typestore=typestore(), offered_qos_profiles=[bag_qos(reliable, latched, 10)]
            )
            qos = QoSProfile(
                depth=100,
                reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
            )
            self.node.create_subscription(cls, topic, self._writer_for(topic, connection), qos, raw=True)
            self.counts[topic] = 0
            self.node.get_logger().info(f"recording {topic} [{types[0]}]")

    def _wanted(self, topic: str) -> bool:
        if self.topics is None:
            return topic not in _GRAPH_TOPICS and "/_" not in topic
        return topic in self.topics

    def _writer_for(self, topic: str, connection: Connection):
        def write(data: bytes) -> None:
            now_ns = self.node.get_clock().now().nanoseconds
            self.writer.write(connection, now_ns, data)
            self.counts[topic] += 1
            if self.first_ns is None:
                self.first_ns = now_ns
            if self.progress is not None:
                self.progress.update(1)

        return write

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def record(
    out: Path,
    topics: list[str] | None,
    *,
    storage: str = "mcap",
    duration_s: float | None = None,
    max_messages: int | None = None,
    timeout_s: float | None = None,
    compress: bool = False,
    show_progress: bool = True,
) -> dict[str, int]:
    """Record ``topics`` (None: all) into a new bag at ``out``; returns the message count per topic.

    Stops on Ctrl-C, ``duration_s`` after the first message, after ``max_messages`` messages, or
    ``timeout_s`` after the start when nothing arrived (then raises ``TimeoutError``).
    """
    writer = Writer(out, version=9, storage_plugin=STORAGES[storage])
    if compress:
        writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
    ros = IsolatedNode("tavi_bag_record")
    node = ros.node
    wanted = None if topics is None else {absolute(t) for t in topics}
    progress = tqdm(desc=f"recording {out.name}", unit="msg", disable=not show_progress, file=sys.stderr)
    writer.open()
    recorder = Recorder(node, writer, wanted, progress=progress)
    start_s = last_poll_s = time.monotonic()
    recorder.poll_graph()
    try:
        while node.context.ok():
            ros.executor.spin_once(timeout_sec=0.05)
            now_s = time.monotonic()
            if now_s - last_poll_s > 0.2:
                recorder.poll_graph()
                last_poll_s = now_s
            if max_messages is not None and recorder.total >= max_messages:
                break
            if (
                duration_s is not None
                and recorder.first_ns is not None
                and _elapsed_s(node, recorder) >= duration_s
            ):
                break
            if timeout_s is not None and recorder.first_ns is None and now_s - start_s > timeout_s:
                raise TimeoutError(
                    f"no message on {sorted(wanted) if wanted else 'any topic'} within {timeout_s} s"
                )
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        progress.close()
        writer.close()
        ros.close()
    return dict(recorder.counts)


def _elapsed_s(node: Node, recorder: Recorder) -> float:
    """Seconds of data recorded so far (node clock since the first message)."""
    return (node.get_clock().now().nanoseconds - (recorder.first_ns or 0)) * 1e-9


# --------------------------------------------------------------------------- play


def parse_remaps(pairs: Iterable[str]) -> dict[str, str]:
    """``from:=to`` pairs as absolute topic names; raises ``ValueError`` on a malformed pair."""
    remaps = {}
    for pair in pairs:
        if ":=" not in pair:
            raise ValueError(f"remap {pair!r} is not of the form from:=to")
        src, dst = pair.split(":=", 1)
        if not src or not dst:
            raise ValueError(f"remap {pair!r} has an empty side")
        remaps[absolute(src)] = absolute(dst)
    return remaps


def _playback_qos(connection: Connection) -> QoSProfile:
    """Reliable (it matches best-effort and reliable subscribers alike), durability and depth as recorded."""
    offered = getattr(connection.ext, "offered_qos_profiles", None) or []
    latched = (bool(offered) and offered[0].durability == QosDurability.TRANSIENT_LOCAL) or bool(
        getattr(connection.ext, "latching", 0)
    )
    depth = max(1, int(offered[0].depth)) if offered else 10
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


Converter = Callable[[bytes | memoryview], bytes | memoryview]


def is_ros1_bag(path: Path) -> bool:
    return path.is_file() and path.suffix == ".bag"


@contextlib.contextmanager
def open_bag(path: Path) -> Iterator[tuple[AnyReader, dict[int, Converter], dict[str, str]]]:
    """A reader of a rosbag2 folder/file or a ROS 1 ``.bag``; for each connection whose type this
    typestore knows, the converter of its raw messages to the installed definition in ROS 2 CDR; and the
    topics whose recorded definition differs from the installed one ({topic: type}).

    Converters: identity when the recorded definition has the installed wire format; else (a ROS 1
    message, or a definition that changed since the bag was recorded) the message is rebuilt field by
    field: fields the installed definition added get their defaults, fields it dropped are left out.
    """
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    store, cache = typestore(), {}
    with AnyReader([path], default_typestore=store) as reader:
        converters: dict[int, Converter] = {}
        migrated: dict[str, str] = {}
        for c in reader.connections:
            if c.msgtype not in store.fielddefs:
                continue
            if reader.is2 and not is_same_wireformat(reader.typestore, store, c.msgtype, c.msgtype):
                migrated[c.topic] = c.msgtype
            with contextlib.redirect_stdout(io.StringIO()):  # rosbags announces each migration on stdout
                converters[c.id] = generate_message_converter(
                    reader.typestore, store, c.msgtype, c.msgtype, cache, src_is2=reader.is2, dst_is2=True
                )
        yield reader, converters, migrated


def playable_connections(
    connections: Iterable[Connection], converters: dict[int, Converter]
) -> tuple[list[Connection], dict[str, str]]:
    """The connections whose message type is installed here, and the others as {topic: type}."""
    playable, skipped = [], {}
    for c in connections:
        try:
            msg_class(c.msgtype)
        except ValueError:
            skipped[c.topic] = c.msgtype
            continue
        if c.id in converters:
            playable.append(c)
        else:
            skipped[c.topic] = c.msgtype
    return playable, skipped


def play(
    path: Path,
    *,
    rate: float = 1.0,
    loop: bool = False,
    remaps: dict[str, str] | None = None,
    topics: list[str] | None = None,
    publish_clock: bool = False,
    wait_for: list[str] | None = None,
    wait_timeout_s: float = 30.0,
    show_progress: bool = True,
) -> int:
    """Publish the bag's messages with their recorded timing divided by ``rate``; returns the count published.

    ``wait_for`` names (after remapping) topics that must have a subscriber before playback starts;
    raises ``TimeoutError`` when they do not within ``wait_timeout_s``. A message on a latched
    (transient-local) topic is state that holds for what follows (the scale on ``calibration/mm_per_px``):
    playback goes on once every matched subscriber has acknowledged it (at most 1 s), so that it does not
    race the frames published after it. Topics whose message type is not
    installed here are skipped with a warning on stderr naming them.
    """
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    remaps = remaps or {}
    selected = None if topics is None else {absolute(t) for t in topics}
    published = 0
    with standalone_node("tavi_bag_play") as node:
        context = node.context
        with open_bag(path) as (reader, converters, migrated):
            wanted = [c for c in reader.connections if selected is None or c.topic in selected]
            if not wanted:
                raise ValueError(f"{path}: none of the topics {sorted(selected or [])} is in the bag")
            connections, skipped = playable_connections(wanted, converters)
            for topic, msgtype in sorted(skipped.items()):
                print(
                    f"bag play: warning: skipping {topic}: message type {msgtype} is not installed here",
                    file=sys.stderr,
                )
            for topic, msgtype in sorted(migrated.items()):
                if topic in {c.topic for c in connections}:
                    print(
                        f"bag play: warning: {topic}: the bag's {msgtype} differs from the installed one; "
                        "converted (added fields get their defaults, dropped fields are left out)",
                        file=sys.stderr,
                    )
            if not connections:
                raise ValueError(f"{path}: no topic has a message type installed here ({skipped})")
            publishers, latched = {}, set()
            for c in connections:
                qos = _playback_qos(c)
                name = remaps.get(c.topic, c.topic)
                publishers[c.id] = node.create_publisher(msg_class(c.msgtype), name, qos)
                if qos.durability == DurabilityPolicy.TRANSIENT_LOCAL:
                    latched.add(c.id)
            clock_pub = node.create_publisher(Clock, "/clock", QoSProfile(depth=1)) if publish_clock else None
            _wait_for_subscribers(node, [absolute(t) for t in wait_for or []], publishers, wait_timeout_s)
            total = sum(c.msgcount for c in connections)
            iteration = 0
            while context.ok() and (iteration == 0 or loop):
                desc = f"playing {path.name}" + (f" (loop {iteration + 1})" if loop else "")
                with tqdm(
                    total=total, desc=desc, unit="msg", disable=not show_progress, file=sys.stderr
                ) as bar:
                    start_s, first_ns = time.monotonic(), None
                    for connection, t_ns, data in reader.messages(connections=connections):
                        first_ns = t_ns if first_ns is None else first_ns
                        delay_s = start_s + (t_ns - first_ns) * 1e-9 / rate - time.monotonic()
                        if delay_s > 0:
                            time.sleep(delay_s)
                        if not context.ok():
                            break
                        if clock_pub is not None:
                            clock_pub.publish(Clock(clock=_ns_to_time(t_ns)))
                        publishers[connection.id].publish(bytes(converters[connection.id](data)))
                        if connection.id in latched:
                            publishers[connection.id].wait_for_all_acked(Duration(seconds=1.0))
                        published += 1
                        bar.update(1)
                iteration += 1
            for publisher in publishers.values():  # reliable delivery of the last messages before exit
                publisher.wait_for_all_acked(Duration(seconds=5.0))
    return published


def _ns_to_time(t_ns: int) -> Time:
    return Time(sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)


def _wait_for_subscribers(node: Node, topics: list[str], publishers: dict, timeout_s: float) -> None:
    by_topic = {p.topic_name: p for p in publishers.values()}
    missing = [t for t in topics if t not in by_topic]
    if missing:
        raise ValueError(f"--wait-for names topics the bag does not publish: {missing}")
    deadline = time.monotonic() + timeout_s
    while any(by_topic[t].get_subscription_count() == 0 for t in topics):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no subscriber on {topics} within {timeout_s} s")
        time.sleep(0.02)


# --------------------------------------------------------------------------- info


def info(path: Path) -> dict:
    """Summary of a bag: storage, duration, start/end (ns), message count, and per topic type/count/rate."""
    if is_ros1_bag(path):
        with AnyReader([path]) as reader:
            return _summary(path, "rosbag1", "none", reader)
    with Reader(path) as reader:
        storage = "mcap" if any(path.glob("*.mcap")) or path.suffix == ".mcap" else "sqlite3"
        return _summary(path, storage, reader.compression_mode or "none", reader)


def _summary(path: Path, storage: str, compression: str, reader: Reader | AnyReader) -> dict:
    duration_s = reader.duration * 1e-9
    topics = {
        topic: {
            "type": t.msgtype,
            "count": t.msgcount,
            "rate_hz": (t.msgcount - 1) / duration_s if duration_s > 0 and t.msgcount > 1 else 0.0,
        }
        for topic, t in reader.topics.items()
    }
    return {
        "path": str(path),
        "storage": storage,
        "compression": compression,
        "duration_s": duration_s,
        "start_ns": reader.start_time,
        "end_ns": reader.end_time,
        "messages": reader.message_count,
        "topics": topics,
    }


# --------------------------------------------------------------------------- convert


def convert(
    recording: Recording,
    out: Path,
    *,
    storage: str = "mcap",
    start_ns: int | None = None,
    topic: str = "/fluoro/image",
    frame_id: str = "fluoro",
    show_progress: bool = True,
) -> dict[str, int]:
    """Write ``recording`` into a new bag at ``out`` (module docstring); returns the count per topic.

    ``start_ns`` (default: now) is the stamp of the first frame. The bag is written under a temporary
    name and renamed to ``out`` only when complete.
    """
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Float64, Header

    from tavi_perception.ros.imaging import numpy_to_image
    from tavi_perception.ros.source_node import CALIBRATION_TOPIC

    if out.exists():
        raise ValueError(f"{out} exists already; choose a new name")
    start_ns = time.time_ns() if start_ns is None else start_ns
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    counts = {absolute(topic): 0}
    info = recording.info
    try:
        with Writer(partial, version=9, storage_plugin=STORAGES[storage]) as writer:
            store = typestore()
            images = writer.add_connection(
                absolute(topic),
                "sensor_msgs/msg/Image",
                typestore=store,
                offered_qos_profiles=[bag_qos(True, False, 5)],
            )
            if info.mm_per_px is not None:
                scale = writer.add_connection(
                    absolute(CALIBRATION_TOPIC),
                    "std_msgs/msg/Float64",
                    typestore=store,
                    offered_qos_profiles=[bag_qos(True, True, 1)],
                )
                writer.write(scale, start_ns, serialize_message(Float64(data=float(info.mm_per_px))))
                counts[absolute(CALIBRATION_TOPIC)] = 1
            for frame in tqdm(
                recording,
                desc=f"converting {Path(info.path).name}",
                unit="frame",
                disable=not show_progress,
                file=sys.stderr,
            ):
                t_ns = start_ns + round(frame.t_s * 1e9)
                header = Header(stamp=_ns_to_time(t_ns), frame_id=frame_id)
                encoding = "mono16" if frame.image.dtype.itemsize == 2 else "mono8"
                writer.write(images, t_ns, serialize_message(numpy_to_image(frame.image, encoding, header)))
                counts[absolute(topic)] += 1
        _rename_bag(partial, out)
    except BaseException:
        if partial.exists():
            shutil.rmtree(partial)
        raise
    return counts


def _rename_bag(partial: Path, out: Path) -> None:
    """Move a finished bag folder into place, its storage files and metadata renamed with it."""
    partial.rename(out)
    metadata = out / "metadata.yaml"
    text = metadata.read_text()
    for storage_file in sorted(out.glob(partial.name + "*")):
        renamed = storage_file.with_name(out.name + storage_file.name[len(partial.name) :])
        storage_file.rename(renamed)
        text = text.replace(storage_file.name, renamed.name)
    metadata.write_text(text)


def _print_info(summary: dict) -> None:
    print(f"bag:         {summary['path']}")
    print(f"storage:     {summary['storage']} (compression: {summary['compression']})")
    print(f"duration:    {summary['duration_s']:.3f} s")
    print(f"messages:    {summary['messages']}")
    print("topics:")
    width = max((len(t) for t in summary["topics"]), default=0)
    for topic, t in summary["topics"].items():
        print(f"  {topic:<{width}}  {t['type']:<32} {t['count']:>7} msgs  {t['rate_hz']:7.2f} Hz")


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tavi-perception bag", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    # options several actions share
    progress = argparse.ArgumentParser(add_help=False)
    progress.add_argument("--no-progress", action="store_true", help="no progress bar")
    storage = argparse.ArgumentParser(add_help=False)
    storage.add_argument(
        "-s", "--storage", choices=sorted(STORAGES), default="mcap", help="storage (default mcap)"
    )

    rec = sub.add_parser(
        "record", parents=[storage, progress], help="record topics of the live graph into a new bag"
    )
    rec.add_argument("topics", nargs="*", help="topics to record (e.g. fluoro/image guidance)")
    rec.add_argument(
        "-a", "--all", action="store_true", help="record every topic (but /rosout, /parameter_events)"
    )
    rec.add_argument("-o", "--output", type=Path, required=True, help="bag folder to create (must not exist)")
    rec.add_argument("--duration", type=float, help="[s] stop this long after the first message")
    rec.add_argument("--max-messages", type=int, help="stop after this many messages in total")
    rec.add_argument(
        "--timeout", type=float, help="[s] fail when no message arrived this long after the start"
    )
    rec.add_argument("--compress", action="store_true", help="zstd per message (rosbag2 'message' mode)")

    ply = sub.add_parser("play", parents=[progress], help="publish a bag with its original timing")
    ply.add_argument("bag", type=Path, help="bag folder (or a .mcap / .db3 file)")
    ply.add_argument("-r", "--rate", type=float, default=1.0, help="speed factor (2 = twice as fast)")
    ply.add_argument("-l", "--loop", action="store_true", help="play again from the start until interrupted")
    ply.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="topic remappings")
    ply.add_argument("--topics", nargs="+", help="play only these topics")
    ply.add_argument("--clock", action="store_true", help="publish /clock with the bag time (use_sim_time)")
    ply.add_argument(
        "--wait-for", nargs="+", default=[], metavar="TOPIC", help="start once these have subscribers"
    )
    ply.add_argument("--wait-timeout", type=float, default=30.0, help="[s] limit of --wait-for (default 30)")

    inf = sub.add_parser("info", help="topics, types, counts and duration of a bag")
    inf.add_argument("bag", type=Path)
    inf.add_argument("--json", action="store_true", help="print one JSON object")

    cnv = sub.add_parser(
        "convert",
        parents=[storage, progress],
        help="a recording (DICOM, video, image folder) into a new bag",
    )
    cnv.add_argument("input", type=Path, help="DICOM file or series folder, video file, or image folder")
    cnv.add_argument("output", type=Path, help="bag folder to create (must not exist)")
    cnv.add_argument("--mm-per-px", type=float, help="[mm/px] scale at the isocentre (overrides the file)")
    cnv.add_argument("--fps", type=float, help="[1/s] frame rate (overrides the file)")
    cnv.add_argument("--start", type=float, help="[s since the epoch] stamp of the first frame (default now)")
    cnv.add_argument("--topic", default="fluoro/image", help="image topic (default fluoro/image)")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.action == "record":
            if not args.topics and not args.all:
                print("bag record: name topics or use --all", file=sys.stderr)
                return 2
            if args.output.exists():
                print(f"bag record: {args.output} exists already; choose a new folder", file=sys.stderr)
                return 2
            counts = record(
                args.output,
                None if args.all else args.topics,
                storage=args.storage,
                duration_s=args.duration,
                max_messages=args.max_messages,
                timeout_s=args.timeout,
                compress=args.compress,
                show_progress=not args.no_progress,
            )
            print(f"recorded {sum(counts.values())} messages into {args.output}: {counts}")
        elif args.action == "play":
            n = play(
                args.bag,
                rate=args.rate,
                loop=args.loop,
                remaps=parse_remaps(args.remap),
                topics=args.topics,
                publish_clock=args.clock,
                wait_for=args.wait_for,
                wait_timeout_s=args.wait_timeout,
                show_progress=not args.no_progress,
            )
            print(f"published {n} messages from {args.bag}")
        elif args.action == "convert":
            recording = open_recording(args.input, Overrides(mm_per_px=args.mm_per_px, fps=args.fps))
            for warning in recording.info.warnings:
                print(f"bag convert: warning: {warning}", file=sys.stderr)
            counts = convert(
                recording,
                args.output,
                storage=args.storage,
                start_ns=None if args.start is None else round(args.start * 1e9),
                topic=args.topic,
                show_progress=not args.no_progress,
            )
            print(f"wrote {args.output}: {counts}")
        else:
            summary = info(args.bag)
            if args.json:
                print(json.dumps(summary))
            else:
                _print_info(summary)
    except (
        FileNotFoundError,
        ValueError,
        TimeoutError,
        ReaderError,
        WriterError,
        Ros1ReaderError,
        AnyReaderError,
        RecordingError,
    ) as err:
        print(f"bag {args.action}: {err}", file=sys.stderr)
        return 1
    return 0


IMAGE_FRAME_ID = "fluoro"  # frame_id of the image header in a run's bag (perception_node's input)


class OutputBag:
    """The messages perception_node would publish for each frame of an offline run (``tavi-perception
    run``), serialized into an MCAP rosbag2 folder; with ``images`` the frames too."""

    def __init__(self, path: Path, images: bool = False) -> None:
        self.path = path
        self._store = typestore()
        self._writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        qos = [bag_qos(True, False, 10)]
        topics = {
            "/guidance": "tavi_msgs/msg/Guidance",
            "/keypoints": "tavi_msgs/msg/KeypointArray",
            "/annulus_pose": "geometry_msgs/msg/PoseWithCovarianceStamped",
            "/catheter_tip_pose": "geometry_msgs/msg/PoseWithCovarianceStamped",
            "/tf": "tf2_msgs/msg/TFMessage",
        }
        if images:
            topics["/fluoro/image"] = "sensor_msgs/msg/Image"
        self._connections = {
            topic: self._writer.add_connection(
                topic, msgtype, typestore=self._store, offered_qos_profiles=qos
            )
            for topic, msgtype in topics.items()
        }
        self.counts = dict.fromkeys(topics, 0)

    def _write(self, topic: str, t_ns: int, data: bytes) -> None:
        self._writer.write(self._connections[topic], t_ns, data)
        self.counts[topic] += 1

    def add(self, frame: Frame, outcome: FrameResult | UnprocessedFrame, ms: float) -> None:
        """Write the messages perception_node publishes for ``outcome`` of ``frame`` (and the frame)."""
        stamp = messages.s_to_stamp(frame.t_s)
        t_ns = messages.stamp_ns(stamp)
        header = Header(stamp=stamp, frame_id=IMAGE_FRAME_ID)
        if "/fluoro/image" in self._connections:
            encoding = "mono16" if frame.image.dtype.itemsize == 2 else "mono8"
            self._write(
                "/fluoro/image", t_ns, serialize_message(numpy_to_image(frame.image, encoding, header))
            )
        if outcome.estimate is None:  # a repeat is answered with nothing
            return
        guidance = messages.guidance_to_msg(outcome.estimate, header, ms)
        self._write("/guidance", t_ns, serialize_message(guidance))
        if not isinstance(outcome, FrameResult):
            return
        tracked, det = outcome.tracked, outcome.detections
        keypoints = messages.keypoints_to_msg(
            header,
            frame.image.shape[1],
            frame.image.shape[0],
            tracked.xy_px,
            tracked.velocity_px_s,
            tracked.std_px,
            tracked.state,
            det.visibility,
            det.group_probability,
        )
        self._write("/keypoints", t_ns, serialize_message(keypoints))
        metric = Header(stamp=stamp, frame_id=messages.METRIC_FRAME_ID)
        if guidance.annulus_valid:
            pose = messages.annulus_pose(metric, guidance, tracked.xy_px, tracked.std_px)
            self._write("/annulus_pose", t_ns, serialize_message(pose))
            transform = messages.annulus_transform(metric, guidance)
            # tf2_msgs has no PyPI wheel: the TFMessage is built in the bag's typestore around the
            # node's own TransformStamped
            stamped = self._store.deserialize_cdr(
                serialize_message(transform), "geometry_msgs/msg/TransformStamped"
            )
            tf_cls = self._store.types["tf2_msgs/msg/TFMessage"]
            data = self._store.serialize_cdr(tf_cls(transforms=[stamped]), "tf2_msgs/msg/TFMessage")
            self._write("/tf", t_ns, bytes(data))
        if guidance.catheter_valid:
            tip = messages.tip_pose(metric, tracked.xy_px, tracked.std_px, guidance.mm_per_px)
            self._write("/catheter_tip_pose", t_ns, serialize_message(tip))

    def close(self) -> None:
        self._writer.close()
