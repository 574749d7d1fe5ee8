"""``tavi-perception publish INPUT``: a recording (DICOM, video, image folder) as a live image source.

A plain node (``tavi_recording_source``) that publishes each frame as sensor_msgs/Image (``mono8`` or
``mono16``, frame_id ``fluoro``) on ``fluoro/image`` at the recording's own frame times (divided by
``--rate``), reliable with a queue of 5 (it matches perception_node's best-effort subscription too).

Stamps: ``--stamps send`` (default) stamps each frame with the node clock when it is sent, as a frame
grabber would; ``--stamps recording`` stamps frame ``i`` with the send time of the first frame plus the
frame's recording time, so the intervals are exactly the recording's (with ``--rate`` 1 both agree up to
the publishing jitter; at another rate recording stamps drift from the clock, and perception_node's
stale and future-stamp rules reject the frames).

Calibration: when the recording's scale is known (DICOM tags or ``--mm-per-px``) it is published once on
``calibration/mm_per_px`` (std_msgs/Float64, reliable, transient local: a perception node that starts
later still receives it) and printed with its source; perception_node takes it over its own parameters.
An uncalibrated recording publishes nothing there and says so.

Remappings and a namespace go after ``--ros-args`` as for any node
(``tavi-perception publish cine.dcm --ros-args -r fluoro/image:=/camera/image``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from builtin_interfaces.msg import Time
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import Image
from std_msgs.msg import Float64, Header
from tqdm import tqdm

from tavi_perception.recordings import Overrides, Recording, RecordingError, open_recording
from tavi_perception.ros.imaging import numpy_to_image
from tavi_perception.ros.standalone import standalone_node

IMAGE_TOPIC = "fluoro/image"
CALIBRATION_TOPIC = "calibration/mm_per_px"  # perception_node listens here (latched)
FRAME_ID = "fluoro"
STAMPS = ("send", "recording")


class RecordingSource:
    """Publishes one recording's frames on ``node`` (see the module docstring)."""

    def __init__(
        self, node: Node, recording: Recording, topic: str = IMAGE_TOPIC, frame_id: str = FRAME_ID
    ) -> None:
        self.node = node
        self.recording = recording
        self.frame_id = frame_id
        image_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE
        )
        self.image_pub = node.create_publisher(Image, topic, image_qos)
        self.calibration_pub = None
        info = recording.info
        if info.mm_per_px is not None:
            latched = QoSProfile(
                history=HistoryPolicy.KEEP_LAST,
                depth=1,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL,
            )
            self.calibration_pub = node.create_publisher(Float64, CALIBRATION_TOPIC, latched)
            self.calibration_pub.publish(Float64(data=float(info.mm_per_px)))

    def wait_for_subscriber(self, timeout_s: float) -> None:
        """Block until the image topic has a subscriber and every calibration subscriber has acknowledged
        the scale (so perception measures the first frame in millimetres already); raises
        ``TimeoutError`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self.image_pub.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no subscriber on {self.image_pub.topic_name} within {timeout_s} s")
            time.sleep(0.02)
        if self.calibration_pub is not None and self.calibration_pub.get_subscription_count() > 0:
            left_s = max(deadline - time.monotonic(), 0.1)
            if not self.calibration_pub.wait_for_all_acked(Duration(seconds=left_s)):
                raise TimeoutError(f"{CALIBRATION_TOPIC} not acknowledged within {timeout_s} s")

    def play_once(self, rate: float, stamps: str, progress: tqdm | None = None) -> int:
        """Publish every frame at its recording time divided by ``rate``; returns the count published."""
        published = 0
        start_s = first_stamp_ns = None
        for frame in self.recording:
            if not self.node.context.ok():
                break
            if start_s is None:
                start_s = time.monotonic()
            delay_s = start_s + frame.t_s / rate - time.monotonic()
            if delay_s > 0:
                time.sleep(delay_s)
            stamp_ns = self.node.get_clock().now().nanoseconds
            if stamps == "recording":
                first_stamp_ns = stamp_ns if first_stamp_ns is None else first_stamp_ns
                stamp_ns = first_stamp_ns + round(frame.t_s * 1e9)
            encoding = "mono16" if frame.image.dtype.itemsize == 2 else "mono8"
            stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
            header = Header(stamp=stamp, frame_id=self.frame_id)
            self.image_pub.publish(numpy_to_image(frame.image, encoding, header))
            published += 1
            if progress is not None:
                progress.update(1)
        return published

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until the reliable subscribers acknowledged what was published (before exiting)."""
        self.image_pub.wait_for_all_acked(Duration(seconds=timeout_s))


def publish(
    recording: Recording,
    *,
    ros_args: list[str] | None = None,
    rate: float = 1.0,
    loop: bool = False,
    stamps: str = "send",
    wait_for_subscriber: bool = False,
    wait_timeout_s: float = 30.0,
    show_progress: bool = True,
) -> int:
    """Publish ``recording`` from a node of its own; returns the number of frames published."""
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    if stamps not in STAMPS:
        raise ValueError(f"stamps must be one of {STAMPS}, got {stamps!r}")
    published = 0
    args = ["publish", "--ros-args", *ros_args] if ros_args else ["publish"]
    with standalone_node("tavi_recording_source", args) as node:
        source = RecordingSource(node, recording)
        if wait_for_subscriber:
            source.wait_for_subscriber(wait_timeout_s)
        iteration = 0
        while node.context.ok() and (iteration == 0 or loop):
            desc = Path(recording.info.path).name + (f" (loop {iteration + 1})" if loop else "")
            with tqdm(total=len(recording), desc=desc, unit="frame", disable=not show_progress) as bar:
                published += source.play_once(rate, stamps, bar)
            iteration += 1
        source.flush()
    return published


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tavi-perception publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, help="DICOM file or series folder, video file, or image folder")
    parser.add_argument("--mm-per-px", type=float, help="[mm/px] scale at the isocentre (overrides the file)")
    parser.add_argument("--fps", type=float, help="[1/s] frame rate (overrides the file)")
    parser.add_argument("-r", "--rate", type=float, default=1.0, help="speed factor (2 = twice as fast)")
    parser.add_argument(
        "-l", "--loop", action="store_true", help="play again from the start until interrupted"
    )
    parser.add_argument("--stamps", choices=STAMPS, default="send", help="header stamps (module docstring)")
    parser.add_argument(
        "--wait-for-subscriber", action="store_true", help="start once the image topic has a subscriber"
    )
    parser.add_argument("--wait-timeout", type=float, default=30.0, help="[s] limit of --wait-for-subscriber")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str]) -> int:
    ros_args: list[str] = []
    if "--ros-args" in argv:
        split = argv.index("--ros-args")
        argv, ros_args = argv[:split], argv[split + 1 :]
    args = _parser().parse_args(remove_ros_args(argv))
    try:
        recording = open_recording(args.input, Overrides(mm_per_px=args.mm_per_px, fps=args.fps))
        info = recording.info
        for warning in info.warnings:
            print(f"publish: warning: {warning}", file=sys.stderr)
        if info.mm_per_px is not None:
            print(f"publish: {CALIBRATION_TOPIC} = {info.mm_per_px:g} mm/px ({info.calibration_source})")
            print(
                f"publish: the same as perception_node parameters: -p mm_per_px:={info.mm_per_px:g} "
                f"-p calibration_width_px:={info.width_px}"
            )
        else:
            print(f"publish: nothing on {CALIBRATION_TOPIC}: {info.calibration_source}")
        print(f"publish: {info.frame_count} frames of {info.width_px}x{info.height_px} at {info.fps:g} fps")
        count = publish(
            recording,
            ros_args=ros_args,
            rate=args.rate,
            loop=args.loop,
            stamps=args.stamps,
            wait_for_subscriber=args.wait_for_subscriber,
            wait_timeout_s=args.wait_timeout,
            show_progress=not args.no_progress,
        )
    except (RecordingError, ValueError, TimeoutError) as err:
        print(f"publish: {err}", file=sys.stderr)
        return 1
    print(f"published {count} frames from {args.input}")
    return 0
