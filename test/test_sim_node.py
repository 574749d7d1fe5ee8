"""simulator_node over real DDS: frames on the node clock (/clock), ground truth matching each image,
manipulator drive, parameter validation; plus its pure message builders."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_graph import NodeProcess, Probe
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from tavi_msgs.msg import Guidance, KeypointArray, ManipulatorCommand

from tavi_perception.keypoints import KEYPOINT_NAMES, Kp
from tavi_perception.ros.imaging import image_to_numpy
from tavi_perception.ros.messages import s_to_stamp, stamp_ns
from tavi_perception.ros.params import ParameterError
from tavi_perception.ros.simulator_node import command_schedule, frame_fault, truth_guidance, truth_keypoints
from tavi_perception.sim import DeliveryState, ProcedureSimulator

MODULE = "tavi_perception.ros.simulator_node"
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
NS = 1_000_000_000


def _collect_frames(probe: Probe) -> tuple[list[Image], list[KeypointArray], list[Guidance]]:
    """What the node publishes per frame, collected reliably: images, true keypoints, true guidance."""
    return (
        probe.collect(Image, "fluoro/image", RELIABLE),
        probe.collect(KeypointArray, "fluoro/ground_truth/keypoints", RELIABLE),
        probe.collect(Guidance, "fluoro/ground_truth/guidance", RELIABLE),
    )


@pytest.mark.ros
def test_node_follows_the_clock_one_frame_per_period_with_ground_truth_matching_each_image() -> None:
    # use_sim_time: the probe owns /clock and advances it by 1/fps only once the previous frame arrived,
    # so every frame's stamp is known exactly, whatever the load of the machine
    with Probe("sim_clock_probe") as probe:
        images, keypoints, truth = _collect_frames(probe)
        diagnostics = probe.collect(DiagnosticArray, "/diagnostics", RELIABLE)
        clock = probe.node.create_publisher(Clock, "/clock", 10)
        probe.start(
            MODULE,
            [
                "-p",
                "use_sim_time:=true",
                "-p",
                "fps:=10.0",
                "-p",
                "image_size:=256",
                "-p",
                "frame_id:=fluoro_test",
            ],
        )
        assert probe.wait_matched("fluoro/image") and probe.wait_matched("fluoro/ground_truth/guidance")
        assert probe.spin_until(lambda: clock.get_subscription_count() > 0)
        sent_ns: list[int] = []
        while len(images) < 20 and len(sent_ns) < 60:
            t_ns = NS + len(sent_ns) * NS // 10  # 1.0 s, 1.1 s, ... of clock time
            clock.publish(Clock(clock=s_to_stamp(t_ns * 1e-9)))
            sent_ns.append(t_ns)
            # until the first frame (the frame timer may start after the first steps) a short wait
            arrived = lambda t=t_ns: bool(images) and stamp_ns(images[-1].header.stamp) == t  # noqa: E731
            probe.spin_until(arrived, 10.0 if images else 0.5)
        assert probe.spin_until(
            lambda: len(truth) == len(images) and len(keypoints) == len(images) and diagnostics
        )
        stamps = [stamp_ns(m.header.stamp) for m in images]
        # once frames flow: exactly one frame per clock step, stamped with it
        assert len(stamps) >= 20 and stamps == sent_ns[-len(stamps) :]
        report = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
        assert diagnostics[-1].status[0].name == "/simulator_node: fluoroscopy" and int(report["frames"]) > 0
        image = images[3]
        assert image.encoding == "mono8" and (image.width, image.height) == (256, 256)
        assert image.header.frame_id == "fluoro_test"
        assert image_to_numpy(image).shape == (256, 256)
        for img, kp, g in zip(images, keypoints, truth, strict=True):
            assert kp.header == g.header == img.header
            assert [k.name for k in kp.keypoints] == list(KEYPOINT_NAMES)
            assert all(
                k.state in (0, 2) and k.visibility == (1.0 if k.state == 0 else 0.0) for k in kp.keypoints
            )
            assert g.valid and g.annulus_valid and g.catheter_valid and g.stent_valid and g.extraction_valid
            assert g.mm_per_px > 0 and g.target_depth_mm == 4.0


@pytest.mark.ros
def test_command_drive_follows_the_manipulator_and_holds_without_commands() -> None:
    with Probe("sim_command_probe") as probe:
        images, keypoints, truth = _collect_frames(probe)
        commands = probe.node.create_publisher(ManipulatorCommand, "manipulator/command", 10)
        probe.start(
            MODULE,
            [
                "-p", "drive:=command", "-p", "fps:=15.0", "-p", "image_size:=256", "-p", "bit_depth:=16",
                "-p", "start_tip_mm:=-10.0", "-p", "contrast_first_injection_s:=-1.0",
            ],
        )  # fmt: skip
        assert probe.spin_until(lambda: len(truth) >= 5, 60)
        assert images[0].encoding == "mono16"
        start_depth = truth[-1].tip_depth_mm
        advance = probe.node.create_timer(
            0.05, lambda: commands.publish(ManipulatorCommand(advance_speed_mm_s=4.0, reason="test"))
        )
        assert probe.spin_until(lambda: truth[-1].tip_depth_mm > start_depth + 3.0, 30)
        advance.cancel()
        # no more commands: the node holds after command_timeout_s (0.5 s) and the tip stops (its image
        # depth then only wobbles by the perspective of the heartbeat, well under 0.2 mm)
        stopped_after = len(truth) + 10

        def held() -> bool:
            depths = [g.tip_depth_mm for g in truth[-8:]]
            return len(truth) > stopped_after and max(depths) - min(depths) < 0.2

        assert probe.spin_until(held, 30)
        assert all(g.annulus_source == Guidance.ANNULUS_PIGTAIL_BOUND for g in truth)  # no contrast
        assert all(kp.keypoints[Kp.AA1].state == 2 for kp in keypoints)
        assert all(g.depth_source == Guidance.DEPTH_SOURCE_TIP and g.deployment_fraction == 0 for g in truth)


@pytest.mark.ros
def test_mujoco_physics_moves_the_tip_behind_the_handle_and_reports_both_in_diagnostics() -> None:
    with Probe("sim_physics_probe") as probe:
        _, _, truth = _collect_frames(probe)
        diagnostics = probe.collect(DiagnosticArray, "/diagnostics", RELIABLE)
        commands = probe.node.create_publisher(ManipulatorCommand, "manipulator/command", 10)
        probe.start(
            MODULE,
            [
                "-p", "drive:=command", "-p", "physics:=mujoco", "-p", "fps:=15.0", "-p", "image_size:=128",
                "-p", "start_tip_mm:=-10.0", "-p", "contrast_first_injection_s:=-1.0",
            ],
        )  # fmt: skip
        assert probe.spin_until(lambda: len(truth) >= 5, 60)
        start_depth = truth[-1].tip_depth_mm
        probe.node.create_timer(
            0.05, lambda: commands.publish(ManipulatorCommand(advance_speed_mm_s=2.0, reason="test"))
        )
        assert probe.spin_until(lambda: truth[-1].tip_depth_mm > start_depth + 2.0, 30)

        def values() -> dict[str, str]:
            return {kv.key: kv.value for kv in diagnostics[-1].status[0].values} if diagnostics else {}

        def advanced_with_lag() -> bool:
            v = values()
            return "tip_sigma_mm" in v and float(v["handle_advance_mm"]) > -7.0

        assert probe.spin_until(advanced_with_lag, 30)
        v = values()
        assert v["physics"] == "mujoco"
        assert float(v["tip_sigma_mm"]) < float(v["handle_advance_mm"]) - 0.2  # the tip lags the handle


@pytest.mark.ros
def test_without_autostart_no_frame_is_published_until_the_node_is_activated() -> None:
    with Probe("sim_lifecycle_probe") as probe:
        images = probe.collect(Image, "fluoro/image", RELIABLE)
        diagnostics = probe.collect(DiagnosticArray, "/diagnostics", RELIABLE)
        probe.start(MODULE, ["-p", "autostart:=false", "-p", "fps:=15.0", "-p", "image_size:=128"])
        change = probe.node.create_client(ChangeState, "simulator_node/change_state")
        assert probe.spin_until(change.service_is_ready, 60), "no change_state service: not a lifecycle node"

        def transition(transition_id: int) -> None:
            future = change.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
            assert probe.spin_until(future.done) and future.result().success

        transition(Transition.TRANSITION_CONFIGURE)
        assert probe.wait_matched("fluoro/image")
        inactive = lambda: sum(d.status[0].message == "inactive" for d in diagnostics)  # noqa: E731
        assert probe.spin_until(lambda: inactive() >= 1, 30)  # a second after configure, still inactive
        assert images == [], "an inactive simulator published frames"
        transition(Transition.TRANSITION_ACTIVATE)
        assert probe.spin_until(lambda: len(images) >= 3, 30), "the activated simulator publishes no frames"


@pytest.mark.ros
def test_node_rejects_invalid_parameters() -> None:
    proc = NodeProcess(MODULE, ["-p", "bit_depth:=12"])
    code, out = proc.wait(60)
    assert code == 2 and "bit_depth" in out
    proc = NodeProcess(MODULE, ["-p", "fps:=0.0"])
    code, out = proc.wait(60)
    assert code == 2 and "fps" in out


def test_command_schedule_from_parameters() -> None:
    assert command_schedule(-1.0, 0.0, 2.0).fill(3.0) == 0.0
    once = command_schedule(1.0, 0.0, 2.0)
    assert once.fill(2.0) == pytest.approx(1.0) and once.fill(30.0) == 0.0
    repeating = command_schedule(1.0, 10.0, 2.0)
    assert repeating.fill(32.0) == pytest.approx(1.0)
    with pytest.raises(ParameterError, match="contrast_interval_s"):
        command_schedule(1.0, 1.0, 2.0)


def test_truth_messages_carry_the_frame_truth() -> None:
    sim = ProcedureSimulator(2, image_size=128)
    sim.place(DeliveryState(3.0, 6.0))
    frame = sim.step()
    header = Header(frame_id="fluoro")
    g = truth_guidance(frame, header, target_depth_mm=4.0, tolerance_mm=1.0, contrast_threshold=0.5)
    t = frame.truth
    assert g.depth_source == Guidance.DEPTH_SOURCE_STENT and g.depth_mm == pytest.approx(
        t.stent_mean_depth_mm
    )
    assert g.depth_error_mm == pytest.approx(t.stent_mean_depth_mm - 4.0)
    assert g.capsule_retraction_mm == pytest.approx(6.0) and g.tip_depth_mm == pytest.approx(t.tip_depth_mm)
    assert (g.annulus_origin_x_px, g.annulus_origin_y_px) == pytest.approx(tuple(t.annulus.origin_px))
    kp = truth_keypoints(frame, header, np.zeros((11, 2)))
    assert (kp.image_width, kp.image_height) == (128, 128)
    np.testing.assert_allclose([[k.x_px, k.y_px] for k in kp.keypoints], frame.keypoints_px)
    assert [k.state == 0 for k in kp.keypoints] == list(frame.visible)


def test_frame_fault_freezes_inside_the_window_and_drops_by_the_draw() -> None:
    window = {"drop_probability": 0.0, "freeze_start_s": 2.0, "freeze_duration_s": 1.5}
    assert frame_fault(1.9, 0.5, **window) == ""
    assert frame_fault(2.0, 0.5, **window) == "frozen" and frame_fault(3.4, 0.5, **window) == "frozen"
    assert frame_fault(3.5, 0.5, **window) == ""
    never = {"freeze_start_s": -1.0, "freeze_duration_s": 5.0}
    assert frame_fault(0.0, 0.19, 0.2, **never) == "dropped"
    assert frame_fault(0.0, 0.2, 0.2, **never) == ""
    assert frame_fault(0.0, 0.0, 0.0, **never) == ""  # probability 0 never drops


def test_frame_fault_repeats_between_grabber_pulses_and_sends_nothing_with_the_pedal_released() -> None:
    quiet = {"drop_draw": 0.5, "drop_probability": 0.0, "freeze_start_s": -1.0, "freeze_duration_s": 0.0}
    assert frame_fault(1.0, **quiet, new_pulse=False) == "repeat"
    assert frame_fault(1.0, **quiet, new_pulse=True) == ""
    assert frame_fault(1.0, **quiet, pedal_pressed=False) == "pedal"
    assert frame_fault(1.0, **quiet, new_pulse=False, pedal_pressed=False) == "pedal"
