"""perception_node over real DDS with the shipped model: inputs, headers, calibration, lifecycle.

The admission rules themselves (stale, future stamps, order, repeats, frozen, non-scene) are tested as
units in test_core_admission.py / test_core_quality.py / test_core_pipeline.py; here only what the node
adds: topics, encodings, decoding errors, calibration and the lifecycle. Two node processes are shared
by the tests of a module-scoped session each (stamps keep increasing across those tests).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_graph import Probe
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float64
from tavi_msgs.msg import CArmState, Guidance, KeypointArray
from visualization_msgs.msg import MarkerArray

from tavi_perception.core.pipeline import SHIPPED_REFINE_MODEL, SHIPPED_ROOT_REFINE_MODEL, shipped_model_path
from tavi_perception.ros.imaging import grey_to_compressed, numpy_to_image
from tavi_perception.ros.messages import METRIC_FRAME_ID, s_to_stamp, stamp_ns
from tavi_perception.sim import DeliveryState, ProcedureSimulator
from tavi_perception.sim.contrast import ContrastSchedule, Injection

pytestmark = pytest.mark.ros

MODULE = "tavi_perception.ros.perception_node"
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
_SIM = ProcedureSimulator(0, image_size=256)
_TIMES_S = itertools.count(100.0, 1 / 15)  # stamps increase across the tests sharing a node


def _pixels(seed: int) -> np.ndarray:
    """A 256² simulator frame (fluoroscopy of the scene, different for every seed)."""
    return _SIM.frame_at(0.5 + seed / 15).image


def _stamped(msg: Image | CompressedImage, t_s: float | None = None) -> Image | CompressedImage:
    msg.header.stamp = s_to_stamp(next(_TIMES_S) if t_s is None else t_s)
    msg.header.frame_id = "fluoro"
    return msg


def _frame(seed: int = 0) -> Image:
    return _stamped(numpy_to_image(_pixels(seed), "mono8"))


class Session:
    """A perception node process and a probe publishing frames to it and collecting its outputs."""

    def __init__(
        self, probe: Probe, *params: str, compressed: bool = False, ns: str = "/", image: str = "image"
    ) -> None:
        """``ns``: the node's namespace (its topics there; two sessions alive at once do not mix);
        ``image``: where its ``image`` topic is remapped to, relative to ``ns``."""
        self.probe = probe
        self.ns = ns.rstrip("/") + "/"
        # reliable input: a test must not lose a frame to a loaded machine (best effort may drop one)
        base = ["-p", "max_frame_age_ms:=0.0", "-p", "image_qos_reliability:=reliable", "-r", f"__ns:={ns}"]
        base += ["-r", f"image:={image}"]
        self.node = probe.start(MODULE, [*base, "-p", "diagnostics_period_s:=0.2", *params])
        self.guidance = probe.collect(Guidance, self.ns + "guidance", RELIABLE)
        self.keypoints = probe.collect(KeypointArray, self.ns + "keypoints", RELIABLE)
        self.diagnostics = probe.collect(DiagnosticArray, "/diagnostics")
        topic, msg_type = (f"{image}/compressed", CompressedImage) if compressed else (image, Image)
        self.images = probe.node.create_publisher(msg_type, self.ns + topic, RELIABLE)

    def wait_ready(self) -> None:
        assert self.probe.spin_until(lambda: self.images.get_subscription_count() > 0, 60), (
            "node never subscribed"
        )
        for topic in ("guidance", "keypoints"):
            assert self.probe.wait_matched(self.ns + topic), f"{topic} never matched"

    def answer(self, frame: Image | CompressedImage) -> Guidance:
        """Publish ``frame`` and return the guidance stamped like it."""
        seen = len(self.guidance)
        self.images.publish(frame)
        key = stamp_ns(frame.header.stamp)
        found = lambda: next((g for g in self.guidance[seen:] if stamp_ns(g.header.stamp) == key), None)  # noqa: E731
        assert self.probe.spin_until(lambda: found() is not None, 60), f"no guidance for stamp {key}"
        assert self.node.alive()
        return found()

    def keypoints_of(self, frame: Image | CompressedImage) -> KeypointArray:
        key = stamp_ns(frame.header.stamp)
        found = lambda: next((k for k in self.keypoints if stamp_ns(k.header.stamp) == key), None)  # noqa: E731
        assert self.probe.spin_until(lambda: found() is not None, 10), f"no keypoints for stamp {key}"
        return found()

    def fresh_diagnostics(self) -> dict[str, object]:
        """The values of this node's /diagnostics status published after this call (the topic is shared:
        the status is named for the node's fully qualified name, so other nodes' are told apart)."""
        count = len(self.diagnostics)
        name = f"{self.ns}perception_node: pipeline"
        mine = lambda: [m.status[0] for m in self.diagnostics[count:] if m.status[0].name == name]  # noqa: E731
        assert self.probe.spin_until(lambda: bool(mine()), 10), f"no /diagnostics status named {name!r}"
        status = mine()[-1]
        return {"level": status.level, "message": status.message} | {kv.key: kv.value for kv in status.values}


def test_lifecycle_activation_with_required_calibration_from_the_latched_topic() -> None:
    with Probe() as probe:
        s = Session(probe, "-p", "autostart:=false", "-p", "require_calibration:=true")
        calibration = probe.node.create_publisher(Float64, "calibration/mm_per_px", LATCHED)
        client = probe.node.create_client(ChangeState, "perception_node/change_state")
        assert probe.spin_until(client.service_is_ready, 60)
        assert s.images.get_subscription_count() == 0  # unconfigured: no image subscription

        def transition(transition_id: int) -> bool:
            future = client.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
            assert probe.spin_until(future.done, 60)
            return future.result().success

        assert transition(Transition.TRANSITION_CONFIGURE)
        assert not transition(Transition.TRANSITION_ACTIVATE)  # nothing explicit yet: refused
        calibration.publish(Float64(data=0.35))  # latched: delivered once the node's subscription matches
        # the node takes the value in its own time: activation succeeds once it has
        assert probe.spin_until(lambda: transition(Transition.TRANSITION_ACTIVATE), 30)
        s.wait_ready()
        guidance = s.answer(_frame(3))
    assert guidance.calibrated and guidance.calibration_source == "topic calibration/mm_per_px 0.35"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("image_qos_reliability:=sometimes", "not one of"),
        ("target_depth_mm:=400.0", "maximum"),
        ("inference_threads:=2.5", "expected int"),
        ("model_path:=/nonexistent/model.onnx", "cannot load the model"),
        (
            "refine_valve:=true -p refine_model_path:=/nonexistent/refine.onnx",
            "cannot load the valve refinement model",
        ),
        (
            "refine_root:=true -p refine_root_model_path:=/nonexistent/root.onnx",
            "cannot load the root refinement model",
        ),
        ("require_calibration:=true", "require_calibration: no explicit calibration"),
        ("device_preset:=nope", "unknown device preset 'nope'"),
    ],
)
def test_bad_parameters_stop_the_node_with_a_clear_error(override: str, expected: str) -> None:
    with Probe() as probe:
        node = probe.start(MODULE, [arg for p in override.split(" -p ") for arg in ("-p", p)])
        code, output = node.wait(timeout_s=60)
    assert code != 0
    assert expected in output, output


@pytest.fixture(scope="module")
def raw() -> Iterator[Session]:
    """A node on raw images without any calibration given."""
    with Probe() as probe:
        session = Session(probe)
        session.wait_ready()
        yield session


@pytest.fixture(scope="module")
def compressed() -> Iterator[Session]:
    """A node on fluoro/image/compressed (image remapped to fluoro/image, image_transport's naming),
    calibrated by parameter, cropping a screen capture to the fluoroscopy image."""
    params = ["-p", "image_transport:=compressed", "-p", "mm_per_px:=0.4", "-p", "calibration_width_px:=0"]
    roi = ["-p", "roi_x_px:=40", "-p", "roi_y_px:=20", "-p", "roi_width_px:=256", "-p", "roi_height_px:=256"]
    with Probe() as probe:
        session = Session(probe, *params, *roi, compressed=True, ns="/compressed", image="fluoro/image")
        session.wait_ready()
        yield session


def test_every_output_carries_the_input_header(raw: Session) -> None:
    frames = [_frame(i) for i in range(4)]
    answers = [raw.answer(f) for f in frames]
    for frame, guidance in zip(frames, answers, strict=True):
        assert guidance.header == frame.header
        kp = raw.keypoints_of(frame)
        assert kp.header == frame.header
        assert [k.name for k in kp.keypoints][:2] == ["AA1", "AA2"] and len(kp.keypoints) == 11
        assert (kp.image_width, kp.image_height) == (256, 256)


def test_without_calibration_every_guidance_says_uncalibrated_and_diagnostics_warn(raw: Session) -> None:
    guidance = raw.answer(_frame(5))
    assert not guidance.calibrated and guidance.calibration_source.startswith("default")
    diagnostics = raw.fresh_diagnostics()
    assert diagnostics["message"] == "uncalibrated" and diagnostics["level"] == DiagnosticStatus.WARN
    assert diagnostics["calibrated"] == "False" and diagnostics["calibration_source"].startswith("default")
    assert diagnostics["device_values"].startswith("default valve_frame_height_mm")


def test_a_yuv422_frame_grabber_frame_is_processed_as_its_luma(raw: Session) -> None:
    luma = _pixels(6)
    uyvy = np.stack([np.full_like(luma, 128), luma], axis=2)  # U/V bytes, then Y
    frame = _stamped(numpy_to_image(uyvy, "yuv422"))
    guidance = raw.answer(frame)
    assert "bad image" not in guidance.invalid_reason and "non-scene" not in guidance.invalid_reason
    assert raw.keypoints_of(frame).image_width == 256


def test_a_blank_frame_in_a_valid_stream_is_answered_invalid_with_the_reason(raw: Session) -> None:
    raw.answer(_frame(7))
    blank = raw.answer(_stamped(numpy_to_image(np.zeros((256, 256), np.uint8), "mono8")))
    assert not blank.valid and blank.invalid_reason.startswith("non-scene frame: black")
    assert blank.annulus_reason == blank.invalid_reason and np.isnan(blank.depth_error_mm)
    assert int(raw.fresh_diagnostics()["admission_non_scene"]) >= 1


def test_a_c_arm_state_change_restarts_tracking_and_drops_the_annulus(raw: Session) -> None:
    carm = raw.probe.node.create_publisher(CArmState, "/carm_state", LATCHED)
    carm.publish(CArmState(primary_angle_deg=30.0, secondary_angle_deg=0.0))
    for _ in range(50):  # until the node reports the first state: the second must not replace it unseen
        if "primary_angle_deg 30" in raw.fresh_diagnostics()["carm_state"]:
            break
    else:
        pytest.fail("the node never reported the first C-arm state")
    before = [raw.answer(_frame(20 + i)) for i in range(3)]
    assert not any("C-arm moved" in g.annulus_reason for g in before)
    carm.publish(CArmState(primary_angle_deg=45.0, secondary_angle_deg=0.0))
    reasons = []
    for i in range(30):  # the state and the frames travel on different topics: the next frames see it
        guidance = raw.answer(_frame(23 + i))
        reasons.append(guidance.annulus_reason or guidance.invalid_reason)
        if "C-arm moved: primary_angle_deg 30 -> 45" in guidance.annulus_reason:
            break
    else:
        pytest.fail(f"no guidance said the C-arm moved: {reasons}")
    assert not guidance.valid and not guidance.annulus_valid


def _malformed() -> dict[str, Image]:
    wrong_encoding = _frame()
    wrong_encoding.encoding = "yuv422_weird"
    truncated = _frame()
    truncated.data = truncated.data[: len(truncated.data) // 2]
    zero = _stamped(Image(height=0, width=0, encoding="mono8", step=0))
    huge = _stamped(Image(height=8192, width=8192, encoding="mono8", step=8192, data=bytes(8192 * 8192)))
    rng = np.random.default_rng(5)
    garbage = Image(height=int(rng.integers(1, 4000)), width=int(rng.integers(1, 4000)), encoding="mono16")
    garbage.step, garbage.data = (
        int(rng.integers(0, 100)),
        rng.integers(0, 256, 1000, dtype=np.uint8).tobytes(),
    )
    return {
        "wrong encoding": wrong_encoding,
        "truncated": truncated,
        "zero size": zero,
        "8192²": huge,
        "random": _stamped(garbage),
    }


def test_malformed_images_yield_invalid_guidance_and_diagnostics_never_a_crash(raw: Session) -> None:
    before = raw.fresh_diagnostics()
    for label, frame in _malformed().items():
        guidance = raw.answer(frame)
        assert not guidance.valid and guidance.invalid_reason, label
        assert guidance.header == frame.header, label
    healthy = raw.answer(_frame(8))
    assert "bad image" not in healthy.invalid_reason
    after = raw.fresh_diagnostics()
    assert int(after["admission_undecodable"]) - int(before["admission_undecodable"]) == 4
    assert int(after["admission_oversize"]) - int(before["admission_oversize"]) == 1


def test_overlay_and_markers_are_published_to_subscribers_with_the_input_header(raw: Session) -> None:
    overlays = raw.probe.collect(Image, "overlay", 1)
    marker_arrays = raw.probe.collect(MarkerArray, "markers", RELIABLE)
    assert raw.probe.spin_until(lambda: raw.probe.node.count_publishers("/overlay") > 0, 30)
    # the node sees our overlay subscription once discovery completes: send frames until one comes back
    for i in range(100):
        if overlays and marker_arrays:
            break
        raw.images.publish(_frame(i % 20))
        raw.probe.spin_until(lambda: bool(overlays) and bool(marker_arrays), 0.2)
    assert overlays and marker_arrays
    overlay = overlays[0]
    assert overlay.encoding == "bgr8" and (overlay.width, overlay.height) == (256, 256)
    assert overlay.header.frame_id == "fluoro"
    assert marker_arrays[0].markers[0].header.frame_id == METRIC_FRAME_ID  # the metric image frame


def test_target_depth_can_be_changed_at_run_time(raw: Session) -> None:
    client = raw.probe.node.create_client(SetParameters, "perception_node/set_parameters")
    assert raw.probe.spin_until(client.service_is_ready, 30)
    value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=5.5)
    future = client.call_async(
        SetParameters.Request(parameters=[ParameterMsg(name="target_depth_mm", value=value)])
    )
    assert raw.probe.spin_until(future.done, 30) and future.result().results[0].successful
    assert raw.answer(_frame(9)).target_depth_mm == 5.5


def _screen_capture(seed: int) -> np.ndarray:
    """The 256² image at (40, 20) of a black 320x300 screen."""
    screen = np.zeros((300, 320), np.uint8)
    screen[20:276, 40:296] = _pixels(seed)
    return screen


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_frames_are_answered_with_their_header(compressed: Session, fmt: str) -> None:
    frame = _stamped(grey_to_compressed(_screen_capture(1), fmt))
    guidance = compressed.answer(frame)
    assert guidance.header == frame.header and "bad image" not in guidance.invalid_reason
    assert guidance.calibrated and guidance.calibration_source == "parameter mm_per_px 0.4"


def test_keypoints_of_a_cropped_screen_capture_are_in_the_input_images_pixels(compressed: Session) -> None:
    screen = _screen_capture(2)
    frame = _stamped(grey_to_compressed(screen, "png"))
    compressed.answer(frame)
    kp = compressed.keypoints_of(frame)
    assert (kp.image_width, kp.image_height) == (320, 300)
    # the catheter tip, found in the crop, lies where it is in the screen capture
    tip = next(k for k in kp.keypoints if k.name == "CT")
    truth = _SIM.frame_at(0.5 + 2 / 15).keypoints_px[7] + np.array([40.0, 20.0])
    assert np.hypot(tip.x_px - truth[0], tip.y_px - truth[1]) < 10.0


def test_an_undecodable_compressed_frame_is_answered_invalid(compressed: Session) -> None:
    frame = _stamped(CompressedImage(format="png", data=b"\x89PNG\r\n\x1a\n not a png"))
    guidance = compressed.answer(frame)
    assert not guidance.valid and guidance.invalid_reason.startswith("bad image: cannot decode")


def test_both_refinements_load_the_shipped_models_and_answer_every_contrast_frame_of_the_valve_out() -> None:
    contrast = ContrastSchedule((Injection(0.0, plateau_s=600.0),))
    sim = ProcedureSimulator(0, image_size=256, contrast=contrast)
    sim.place(DeliveryState(4.0, 15.0))  # the valve half out in contrast: both refinements run
    frames = [sim.step() for _ in range(40)]
    images = [f.image for f in frames if f.contrast > 0.95][:3]
    with Probe() as probe:
        session = Session(probe, "-p", "refine_valve:=true", "-p", "refine_root:=true", ns="/refined")
        session.wait_ready()
        for image in images:
            guidance = session.answer(_stamped(numpy_to_image(image, "mono8")))
            assert guidance.header.frame_id == "fluoro"
        diagnostics = session.fresh_diagnostics()
    assert len(images) == 3
    assert diagnostics["refine_model_path"] == str(shipped_model_path(SHIPPED_REFINE_MODEL))
    assert diagnostics["refine_root_model_path"] == str(shipped_model_path(SHIPPED_ROOT_REFINE_MODEL))
