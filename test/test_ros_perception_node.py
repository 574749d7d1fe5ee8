"""perception_node over real DDS with the shipped model: headers, robustness to bad input, lifecycle."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_graph import Probe
from sensor_msgs.msg import Image
from tavi_msgs.msg import Guidance, KeypointArray
from visualization_msgs.msg import MarkerArray

from tavi_perception.ros.imaging import numpy_to_image
from tavi_perception.ros.messages import s_to_stamp, stamp_ns

pytestmark = pytest.mark.ros

MODULE = "tavi_perception.ros.perception_node"
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def _frame(t_s: float, size: int = 256, seed: int = 0) -> Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    msg = numpy_to_image(pixels, "mono8")
    msg.header.stamp = s_to_stamp(t_s)
    msg.header.frame_id = "fluoro"
    return msg


class Session:
    """A perception node process and a probe publishing frames to it and collecting its outputs."""

    def __init__(self, probe: Probe, *params: str) -> None:
        self.probe = probe
        # reliable input: a test must not lose a frame to a loaded machine (best effort may drop one)
        base = ["-p", "max_frame_age_ms:=0.0", "-p", "image_qos_reliability:=reliable"]
        self.node = probe.start(MODULE, [*base, *params])
        self.guidance = probe.collect(Guidance, "guidance", RELIABLE)
        self.keypoints = probe.collect(KeypointArray, "keypoints", RELIABLE)
        self.diagnostics = probe.collect(DiagnosticArray, "/diagnostics")
        self.images = probe.node.create_publisher(Image, "image", RELIABLE)

    def wait_ready(self) -> None:
        assert self.probe.spin_until(lambda: self.images.get_subscription_count() > 0, 60), (
            "node never subscribed"
        )
        for topic in ("guidance", "keypoints"):
            assert self.probe.wait_matched(topic), f"{topic} never matched"

    def answer(self, frame: Image) -> Guidance:
        """Publish ``frame`` and return the guidance stamped like it."""
        seen = len(self.guidance)
        self.images.publish(frame)
        key = stamp_ns(frame.header.stamp)
        found = lambda: next((g for g in self.guidance[seen:] if stamp_ns(g.header.stamp) == key), None)  # noqa: E731
        assert self.probe.spin_until(lambda: found() is not None, 60), f"no guidance for stamp {key}"
        assert self.node.alive()
        return found()

    def last_diagnostics(self) -> dict[str, str]:
        assert self.probe.spin_until(lambda: bool(self.diagnostics), 10), "no /diagnostics"
        return {kv.key: kv.value for kv in self.diagnostics[-1].status[0].values}


def test_every_output_carries_the_input_header() -> None:
    with Probe() as probe:
        s = Session(probe)
        s.wait_ready()
        frames = [_frame(100.0 + i / 15, seed=i) for i in range(5)]
        answers = [s.answer(f) for f in frames]
        assert probe.spin_until(lambda: len(s.keypoints) >= 5, 10)
    for frame, guidance in zip(frames, answers, strict=True):
        assert guidance.header == frame.header
    by_stamp = {stamp_ns(k.header.stamp): k for k in s.keypoints}
    for frame in frames:
        kp = by_stamp[stamp_ns(frame.header.stamp)]
        assert kp.header == frame.header
        assert [k.name for k in kp.keypoints][:2] == ["AA1", "AA2"] and len(kp.keypoints) == 11
        assert (kp.image_width, kp.image_height) == (256, 256)


def _malformed() -> dict[str, Image]:
    wrong_encoding = _frame(1.0)
    wrong_encoding.encoding = "yuv422_weird"
    truncated = _frame(2.0)
    truncated.data = truncated.data[: len(truncated.data) // 2]
    zero = Image(height=0, width=0, encoding="mono8", step=0)
    zero.header.stamp = s_to_stamp(3.0)
    huge = Image(height=8192, width=8192, encoding="mono8", step=8192, data=bytes(8192 * 8192))
    huge.header.stamp = s_to_stamp(4.0)
    rng = np.random.default_rng(5)
    garbage = Image(height=int(rng.integers(1, 5000)), width=int(rng.integers(1, 5000)), encoding="mono16")
    garbage.step, garbage.data = (
        int(rng.integers(0, 100)),
        rng.integers(0, 256, 1000, dtype=np.uint8).tobytes(),
    )
    garbage.header.stamp = s_to_stamp(5.0)
    return {
        "wrong encoding": wrong_encoding,
        "truncated": truncated,
        "zero size": zero,
        "8192²": huge,
        "random": garbage,
    }


def test_malformed_images_yield_invalid_guidance_and_diagnostics_never_a_crash() -> None:
    with Probe() as probe:
        s = Session(probe, "-p", "diagnostics_period_s:=0.2")
        s.wait_ready()
        for label, frame in _malformed().items():
            guidance = s.answer(frame)
            assert not guidance.valid, label
            assert guidance.invalid_reason, label
            assert guidance.header == frame.header, label
        healthy = s.answer(_frame(6.0))
        assert "bad image" not in healthy.invalid_reason
        count = len(s.diagnostics)
        assert probe.spin_until(lambda: len(s.diagnostics) > count, 10)
        diagnostics = s.last_diagnostics()
    assert int(diagnostics["rejected_malformed"]) == 5
    assert int(diagnostics["frames_processed"]) == 1


def test_out_of_order_stamps_yield_invalid_guidance_and_tracking_goes_on() -> None:
    with Probe() as probe:
        s = Session(probe, "-p", "diagnostics_period_s:=0.2")
        s.wait_ready()
        s.answer(_frame(50.0))
        late = s.answer(_frame(49.9))
        repeated = s.answer(_frame(50.0, seed=1))
        s.answer(_frame(50.1, seed=2))
        count = len(s.diagnostics)
        assert probe.spin_until(lambda: len(s.diagnostics) > count, 10)
        diagnostics = s.last_diagnostics()
    assert not late.valid and "out-of-order" in late.invalid_reason
    assert not repeated.valid and "out-of-order" in repeated.invalid_reason
    assert int(diagnostics["rejected_out_of_order"]) == 2
    assert int(diagnostics["frames_processed"]) == 2


def test_a_frozen_stream_repeating_old_pixels_with_new_stamps_is_refused() -> None:
    with Probe() as probe:
        s = Session(probe, "-p", "diagnostics_period_s:=0.2")
        s.wait_ready()
        first = s.answer(_frame(20.0, seed=5))
        frozen = [s.answer(_frame(20.0 + i / 15, seed=5)) for i in (1, 2)]
        moving = s.answer(_frame(20.2, seed=6))
        count = len(s.diagnostics)
        assert probe.spin_until(lambda: len(s.diagnostics) > count, 10)
        diagnostics = s.last_diagnostics()
    assert "frozen" not in first.invalid_reason and "frozen" not in moving.invalid_reason
    for guidance in frozen:
        assert not guidance.valid and guidance.invalid_reason.startswith("frozen image")
    assert int(diagnostics["rejected_frozen"]) == 2 and int(diagnostics["frames_processed"]) == 2


def test_stale_frames_are_dropped_with_invalid_guidance() -> None:
    with Probe() as probe:
        s = Session(probe, "-p", "max_frame_age_ms:=100.0")
        s.wait_ready()
        now_s = probe.node.get_clock().now().nanoseconds * 1e-9
        stale = s.answer(_frame(now_s - 5.0))
    assert not stale.valid and "stale" in stale.invalid_reason


def test_overlay_and_markers_are_published_to_subscribers_with_the_input_header() -> None:
    with Probe() as probe:
        s = Session(probe)
        overlays = probe.collect(Image, "overlay", 1)
        marker_arrays = probe.collect(MarkerArray, "markers", RELIABLE)
        s.wait_ready()
        pub = s.images
        assert probe.spin_until(lambda: probe.node.count_publishers("/overlay") > 0, 30)
        frame = _frame(7.0)
        # the node sees our overlay subscription once discovery completes: send frames until one comes back
        for i in range(100):
            if overlays and marker_arrays:
                break
            pub.publish(_frame(7.0 + i / 30, seed=i))
            probe.spin_until(lambda: bool(overlays) and bool(marker_arrays), 0.2)
        assert overlays and marker_arrays
    overlay = overlays[0]
    assert overlay.encoding == "bgr8" and (overlay.width, overlay.height) == (frame.width, frame.height)
    assert overlay.header.frame_id == "fluoro"
    assert marker_arrays[0].markers[0].header.frame_id == "fluoro"


def test_lifecycle_node_waits_for_configure_and_activate_when_not_autostarted() -> None:
    with Probe() as probe:
        s = Session(probe, "-p", "autostart:=false")
        client = probe.node.create_client(ChangeState, "perception_node/change_state")
        assert probe.spin_until(client.service_is_ready, 60)
        assert s.images.get_subscription_count() == 0  # unconfigured: no image subscription
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
            assert probe.spin_until(future.done, 60) and future.result().success
        s.wait_ready()
        assert s.answer(_frame(9.0)).header.stamp == s_to_stamp(9.0)


def test_target_depth_can_be_changed_at_run_time() -> None:
    with Probe() as probe:
        s = Session(probe)
        s.wait_ready()
        client = probe.node.create_client(SetParameters, "perception_node/set_parameters")
        assert probe.spin_until(client.service_is_ready, 30)
        value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=5.5)
        future = client.call_async(
            SetParameters.Request(parameters=[ParameterMsg(name="target_depth_mm", value=value)])
        )
        assert probe.spin_until(future.done, 30) and future.result().results[0].successful
        assert s.answer(_frame(11.0)).target_depth_mm == 5.5


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("image_qos_reliability:=sometimes", "not one of"),
        ("target_depth_mm:=400.0", "maximum"),
        ("inference_threads:=2.5", "expected int"),
        ("model_path:=/nonexistent/model.onnx", "cannot load the model"),
    ],
)
def test_bad_parameters_stop_the_node_with_a_clear_error(override: str, expected: str) -> None:
    with Probe() as probe:
        node = probe.start(MODULE, ["-p", override])
        code, output = node.wait(timeout_s=60)
    assert code != 0
    assert expected in output, output
