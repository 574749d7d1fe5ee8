"""``tavi-perception bag record|play|info``: rosbag2 files (MCAP or sqlite3) through rosbags, no ros2 CLI.

record  subscribes chosen topics of the live graph as serialized messages (types discovered from the
        graph, QoS matched to the publishers) and writes them with their receive time; stops on Ctrl-C,
        after ``--duration`` seconds of data or ``--max-messages``.
play    publishes a bag's serialized messages with the original timing (or scaled by ``--rate``),
        optionally looping, remapping topics, publishing ``/clock`` and waiting for subscribers first.
        Header stamps inside the messages are never rewritten. Publishers are reliable (they match
        best-effort and reliable subscribers alike) with the recorded durability and depth.
info    topics, types, counts, rates, duration; ``--json`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from builtin_interfaces.msg import Time
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import Connection, QosDurability
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosgraph_msgs.msg import Clock
from tqdm import tqdm

from tavi_perception.ros.bagtypes import bag_qos, msg_class, typestore

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
    context = Context()
    rclpy.init(context=context)
    node = Node("tavi_bag_record", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    wanted = None if topics is None else {absolute(t) for t in topics}
    progress = tqdm(desc=f"recording {out.name}", unit="msg", disable=not show_progress, file=sys.stderr)
    writer.open()
    recorder = Recorder(node, writer, wanted, progress=progress)
    start_s = last_poll_s = time.monotonic()
    recorder.poll_graph()
    try:
        while context.ok():
            executor.spin_once(timeout_sec=0.05)
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
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
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
    latched = bool(offered) and offered[0].durability == QosDurability.TRANSIENT_LOCAL
    depth = max(1, int(offered[0].depth)) if offered else 10
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


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
    raises ``TimeoutError`` when they do not within ``wait_timeout_s``.
    """
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    remaps = remaps or {}
    selected = None if topics is None else {absolute(t) for t in topics}
    context = Context()
    rclpy.init(context=context)
    node = Node("tavi_bag_play", context=context)
    published = 0
    try:
        with Reader(path) as reader:
            connections = [c for c in reader.connections if selected is None or c.topic in selected]
            if not connections:
                raise ValueError(f"{path}: none of the topics {sorted(selected or [])} is in the bag")
            publishers = {}
            for c in connections:
                publishers[c.id] = node.create_publisher(
                    msg_class(c.msgtype), remaps.get(c.topic, c.topic), _playback_qos(c)
                )
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
                        publishers[connection.id].publish(bytes(data))
                        published += 1
                        bar.update(1)
                iteration += 1
            for publisher in publishers.values():  # reliable delivery of the last messages before exit
                publisher.wait_for_all_acked(Duration(seconds=5.0))
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
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
    with Reader(path) as reader:
        duration_s = reader.duration * 1e-9
        storage = "mcap" if any(path.glob("*.mcap")) or path.suffix == ".mcap" else "sqlite3"
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
            "compression": reader.compression_mode or "none",
            "duration_s": duration_s,
            "start_ns": reader.start_time,
            "end_ns": reader.end_time,
            "messages": reader.message_count,
            "topics": topics,
        }


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

    rec = sub.add_parser("record", help="record topics of the live graph into a new bag")
    rec.add_argument("topics", nargs="*", help="topics to record (e.g. fluoro/image guidance)")
    rec.add_argument(
        "-a", "--all", action="store_true", help="record every topic (but /rosout, /parameter_events)"
    )
    rec.add_argument("-o", "--output", type=Path, required=True, help="bag folder to create (must not exist)")
    rec.add_argument(
        "-s", "--storage", choices=sorted(STORAGES), default="mcap", help="storage (default mcap)"
    )
    rec.add_argument("--duration", type=float, help="[s] stop this long after the first message")
    rec.add_argument("--max-messages", type=int, help="stop after this many messages in total")
    rec.add_argument(
        "--timeout", type=float, help="[s] fail when no message arrived this long after the start"
    )
    rec.add_argument("--compress", action="store_true", help="zstd per message (rosbag2 'message' mode)")
    rec.add_argument("--no-progress", action="store_true", help="no progress bar")

    ply = sub.add_parser("play", help="publish a bag with its original timing")
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
    ply.add_argument("--no-progress", action="store_true", help="no progress bar")

    inf = sub.add_parser("info", help="topics, types, counts and duration of a bag")
    inf.add_argument("bag", type=Path)
    inf.add_argument("--json", action="store_true", help="print one JSON object")
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
        else:
            summary = info(args.bag)
            if args.json:
                print(json.dumps(summary))
            else:
                _print_info(summary)
    except (FileNotFoundError, ValueError, TimeoutError, ReaderError, WriterError) as err:
        print(f"bag {args.action}: {err}", file=sys.stderr)
        return 1
    return 0
