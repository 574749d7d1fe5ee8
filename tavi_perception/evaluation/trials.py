"""Closed-loop trials: randomised procedures, injected faults, per-trial outcome and summary (no ROS).

``tavi-perception loop`` (:mod:`tavi_perception.runners.loop`) runs each :class:`TrialSpec` through
the real ROS 2 graph and hands the rows its recorder kept to :func:`trial_result`; everything here is
plain Python so the definitions below are tested without a graph.

Definitions (per trial; "truth" is the simulator's ground-truth guidance of each frame):

- ``completed``: the controller declared the deployment complete (a command with ``DONE_REASON``);
- ``final_depth_error_mm``: true controlled depth of the last frame minus the target (the stent frame
  edges' mean depth once deployment started, the tip depth before);
- ``final_asymmetry_mm``: true |FE1 depth - FE2 depth| of the last frame;
- ``success``: completed, ``|final_depth_error_mm| <= SUCCESS_DEPTH_MM`` and
  ``final_asymmetry_mm < SYMMETRIC_MM``; ``depth_success``: completed and within the depth limit, whatever
  the asymmetry;
- ``unsteered_asymmetry_mm``: the true asymmetry of the case with the valve fully deployed exactly at the
  target depth and the steering axis left at 0 (:func:`unsteered_asymmetry_mm`): what the case's
  delivery-axis tilt and the C-arm view give without steering. A trial ``needs_steering`` when it is at
  least ``SYMMETRIC_MM``; ``success_rate_needing_steering`` is the success rate over those trials;
- ``time_to_target_s``: first frame whose true controlled depth is inside the target band, from the
  first frame;
- ``overshoot_mm``: how far the true tip went deeper than the target before deployment started (>= 0);
- ``moves_while_invalid``: commands that move an axis (not a hold, a speed above zero) while answering
  guidance that was invalid, unknown to the recorder, or for a frame the runner corrupted (an injected
  fault: such guidance must never be acted on, whatever perception said; :func:`corrupted_stamps`);
  ``moves_while_invalid_by_kind`` splits them (:data:`MOVE_KINDS`): ``invalid`` (the controller moved on
  guidance perception marked invalid), ``corrupted`` (perception marked a corrupted frame valid) and
  ``unrecorded`` (the recorder never received the guidance answered: a measurement gap, not proof of a
  fault either way);
- ``wrong_valid_frames``: frames whose guidance was valid while its controlled depth was more than
  ``WRONG_DEPTH_MM`` from the truth of the same depth source (valid but wrong: what the validity checks
  missed);
- ``frames_dropped``: frames published by the simulator after perception's first answer that perception
  never processed (no guidance, or rejected as stale), not counting injected drops and pedal gaps nor
  repeated pixels (frozen, grabber: answered with nothing by design);
  ``frames_dropped_injected``: frames the runner withheld from perception (drops, pedal gaps).

Faults (``FAULTS``): ``drops`` (20 % of images withheld), ``frozen`` (2 s of old pixels with new stamps),
``restart`` (perception down for 1 s), ``no-contrast`` (first aortogram at 6-9 s), ``grabber`` (a
``GRABBER_FPS`` capture of a ``GRABBER_PULSE_HZ`` acquisition: new pixels every 4th frame, repeats in
between), ``pedal`` (fluoroscopy runs and pedal gaps with no frames, :func:`pedal_runs`; one aortogram
only, in the first run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from tavi_perception.evaluation.report import DEPTH_SOURCE_STENT, STALE_PREFIX, CommandRow, GuidanceRow
from tavi_perception.sim import DeliveryState, ProcedureSimulator
from tavi_perception.sim.ct.simulator import simulation_case

FAULTS = ("none", "drops", "frozen", "restart", "no-contrast", "grabber", "pedal")
SUCCESS_DEPTH_MM = 1.0  # [mm] |final depth error| for a successful implantation
SYMMETRIC_MM = 2.0  # [mm] clinically symmetric frame-edge depths below this asymmetry
WRONG_DEPTH_MM = 3.0  # [mm] a valid guidance this far from the truth counts as valid but wrong
DONE_REASON = "deployment complete"  # the controller's hold reason once the deployment is complete
MOVE_KINDS = ("invalid", "corrupted", "unrecorded")  # kinds of moves_while_invalid (module docstring)
FAULT_PREFIX = "injected fault"  # invalid_reason of the truth guidance of a corrupted frame
DROPPED_REASON = f"{FAULT_PREFIX}: frame dropped"
FROZEN_REASON = f"{FAULT_PREFIX}: frozen image"
PEDAL_REASON = f"{FAULT_PREFIX}: pedal released"  # no frame: fluoroscopy off between runs
# a grabbed frame that repeats the pixels of the last pulse (the acquisition's normal behaviour behind a
# frame grabber, not a corruption: perception must answer it with nothing)
GRABBER_REPEAT_REASON = f"{FAULT_PREFIX}: grabber repeat"
GRABBER_FPS = 30.0  # [Hz] frame-grabber rate of the ``grabber`` fault (a video capture of the C-arm screen)
GRABBER_PULSE_HZ = 7.5  # [Hz] the acquisition's pulse rate behind it: 4 grabbed frames per pulse
PEDAL_FIRST_RUN_S = (6.0, 8.0)  # [s] the first fluoroscopy run (holds the one aortogram)
PEDAL_RUN_S = (3.0, 8.0)  # [s] later fluoroscopy runs
PEDAL_GAP_S = (2.0, 20.0)  # [s] pedal released between runs: no frames at all
PEDAL_MAX_DURATION_S = 600.0  # [s] the pedal schedule covers this much procedure time


@dataclass(frozen=True)
class TrialSpec:
    """One randomised procedure and the fault injected into it (times from the first frame)."""

    index: int
    case_seed: int  # anatomy, devices, C-arm view, motion, noise (tavi_perception.sim.sample_case)
    fault: str  # one of FAULTS
    start_tip_mm: float  # [mm] tip start position on the rail (negative: above the annulus)
    contrast_first_s: float  # [s] first aortogram
    contrast_interval_s: float  # [s] aortograms repeat this often (0: once)
    contrast_plateau_s: float  # [s] full opacification of each aortogram
    drop_probability: float = 0.0  # [1] share of frames withheld from perception
    freeze_start_s: float = -1.0  # [s] the image stream freezes from here (negative: never)
    freeze_duration_s: float = 0.0  # [s] for this long (old pixels, new stamps)
    restart_at_s: float = -1.0  # [s] the perception node is stopped here (negative: never)
    restart_down_s: float = 0.0  # [s] and started again this much later
    grabber_pulse_hz: float = 0.0  # [Hz] > 0: frames are grabbed at GRABBER_FPS, new pixels at this rate
    pedal_seed: int = -1  # >= 0: fluoroscopy runs and pedal gaps drawn by :func:`pedal_runs` from this seed


def sample_trial(seed: int, index: int, fault: str = "none") -> TrialSpec:
    """Trial ``index`` of a run seeded ``seed``: deterministic for (seed, index, fault).

    Every trial repeats its aortogram every 6-10 s, as during clinical positioning: the annulus is
    re-measured after contrast washout, after a restart or after a frozen stream broke the pigtail
    binding. Fault timings fall in the advance towards the target.
    """
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; expected one of {', '.join(FAULTS)}")
    rng = np.random.default_rng([seed, index, FAULTS.index(fault)])
    base = {
        "index": index,
        "case_seed": int(rng.integers(0, 2**31 - 1)),
        "fault": fault,
        "start_tip_mm": float(rng.uniform(-20.0, -8.0)),
        "contrast_first_s": float(rng.uniform(0.5, 2.5)),
        "contrast_interval_s": float(rng.uniform(6.0, 10.0)),
        "contrast_plateau_s": float(rng.uniform(1.5, 2.5)),
    }
    if fault == "drops":
        base["drop_probability"] = 0.2
    elif fault == "frozen":
        base["freeze_start_s"] = float(rng.uniform(4.0, 6.0))
        base["freeze_duration_s"] = 2.0
    elif fault == "restart":
        base["restart_at_s"] = float(rng.uniform(4.0, 6.0))
        base["restart_down_s"] = 1.0
    elif fault == "no-contrast":
        base["contrast_first_s"] = float(rng.uniform(6.0, 9.0))
    elif fault == "grabber":
        base["grabber_pulse_hz"] = GRABBER_PULSE_HZ
    elif fault == "pedal":  # one aortogram, early in the first run; none after
        base["contrast_first_s"] = float(rng.uniform(0.5, 1.5))
        base["contrast_interval_s"] = 0.0
        base["pedal_seed"] = int(rng.integers(0, 2**31 - 1))
    return TrialSpec(**base)


def pedal_runs(seed: int, duration_s: float = PEDAL_MAX_DURATION_S) -> list[tuple[float, float]]:
    """Fluoroscopy runs ``[(start_s, end_s), ...]`` from t = 0 to ``duration_s``, deterministic for ``seed``.

    The operator presses the pedal for a run of ``PEDAL_FIRST_RUN_S`` (the first, with the aortogram)
    or ``PEDAL_RUN_S`` seconds and releases it for ``PEDAL_GAP_S`` seconds, during which no frame is
    acquired at all.
    """
    rng = np.random.default_rng([seed, 1])
    runs: list[tuple[float, float]] = []
    start_s = 0.0
    length_s = float(rng.uniform(*PEDAL_FIRST_RUN_S))
    while start_s < duration_s:
        runs.append((start_s, start_s + length_s))
        start_s += length_s + float(rng.uniform(*PEDAL_GAP_S))
        length_s = float(rng.uniform(*PEDAL_RUN_S))
    return runs


def duration_limit_s(spec: TrialSpec, max_duration_s: float) -> float:
    """How long a trial may run [s of procedure time]: ``max_duration_s`` of acquisition.

    With the pedal released between runs about a third of the time is acquired (runs 3-8 s, gaps
    2-20 s), so a pedal trial gets four times as long.
    """
    return 4.0 * max_duration_s if spec.pedal_seed >= 0 else max_duration_s


def pedal_pressed(runs: Sequence[tuple[float, float]], t_s: float) -> bool:
    """Whether a frame is acquired at ``t_s`` [s from the first frame] under the pedal ``runs``."""
    return any(start_s <= t_s < end_s for start_s, end_s in runs)


def unsteered_asymmetry_mm(
    case_seed: int,
    target_depth_mm: float,
    image_size: int = 512,
    renderer: str = "stylised",
    view_offset_deg: float | None = None,
) -> float:
    """True frame-edge asymmetry [mm] of a case, unsteered, with the valve deployed at ``target_depth_mm``.

    The tip position along the rail is bisected until the true stent mean depth (at t = 0 of the
    motion) equals the target, with the capsule retracted by the frame height and the steer at 0.
    ``view_offset_deg``: the view of ``simulation_case`` (the truth then in the coplanar view).
    """
    case = simulation_case(renderer, case_seed, view_offset_deg=view_offset_deg)
    sim = ProcedureSimulator(case, image_size=image_size)  # geometry only
    retraction_mm = min(sim.case.devices.frame_height_mm, sim.case.devices.max_retraction_mm)
    low, high = sim.limits.tip_min_mm, sim.limits.tip_max_mm

    def truth(tip_mm: float):
        return sim.truth_at(0.0, DeliveryState(tip_mm, retraction_mm))[1]

    for _ in range(30):  # depth grows with the tip position along the rail
        middle = 0.5 * (low + high)
        low, high = (middle, high) if truth(middle).stent_mean_depth_mm < target_depth_mm else (low, middle)
    return float(truth(0.5 * (low + high)).stent_asymmetry_mm)


@dataclass(frozen=True)
class TrialResult:
    """The outcome of one trial (definitions in the module docstring)."""

    index: int
    case_seed: int
    fault: str
    ended: str  # why the run stopped: "deployment complete" or "max duration"
    completed: bool
    success: bool
    depth_success: bool
    unsteered_asymmetry_mm: float | None
    needs_steering: bool | None
    final_depth_error_mm: float | None
    final_asymmetry_mm: float | None
    final_deployment_fraction: float | None
    time_to_target_s: float | None
    overshoot_mm: float | None
    moves_while_invalid: int
    moves_while_invalid_by_kind: dict[str, int]
    wrong_valid_frames: int
    commands: int
    holds: int
    frames: int
    frames_dropped: int
    frames_dropped_injected: int

    def as_dict(self) -> dict:
        return asdict(self)


def _moves(command: CommandRow) -> bool:
    speeds = (command.advance_speed_mm_s, command.retraction_speed_mm_s, command.steer_rate_deg_s)
    return not command.hold and any(v != 0.0 for v in speeds)


def corrupted_stamps(truth: Sequence[GuidanceRow]) -> set[int]:
    """Stamps of the frames whose guidance must never be acted on: injected faults, except

    - grabber repeats (no corruption: perception answers them with nothing), and
    - the first frame of each frozen stretch: it re-sends the last good frame's pixels one frame period
      later, as fresh as any frame that arrives one period late (perception cannot tell it from the
      original when that one was lost in transport).
    """
    stamps: set[int] = set()
    previous_reason = ""
    for row in sorted(truth, key=lambda r: r.stamp_ns):
        reason = row.invalid_reason
        first_frozen = reason == FROZEN_REASON and previous_reason != FROZEN_REASON
        if reason.startswith(FAULT_PREFIX) and reason != GRABBER_REPEAT_REASON and not first_frozen:
            stamps.add(row.stamp_ns)
        previous_reason = reason
    return stamps


def moves_while_invalid_by_kind(
    commands: Sequence[CommandRow], perceived: Sequence[GuidanceRow], truth: Sequence[GuidanceRow]
) -> dict[str, int]:
    """Moving commands that answer unrecorded, invalid or fault-corrupted guidance, by kind
    (:data:`MOVE_KINDS`, module docstring); a command counts once, under the first kind that applies."""
    perceived_by_stamp = {p.stamp_ns: p for p in perceived}
    corrupted = corrupted_stamps(truth)
    counts = dict.fromkeys(MOVE_KINDS, 0)
    for command in commands:
        if not _moves(command):
            continue
        answered = perceived_by_stamp.get(command.stamp_ns)
        if answered is None:
            counts["unrecorded"] += 1
        elif not answered.valid:
            counts["invalid"] += 1
        elif command.stamp_ns in corrupted:
            counts["corrupted"] += 1
    return counts


def moves_while_invalid(
    commands: Sequence[CommandRow], perceived: Sequence[GuidanceRow], truth: Sequence[GuidanceRow]
) -> int:
    """Moving commands that answer invalid, unknown or fault-corrupted guidance (module docstring)."""
    return sum(moves_while_invalid_by_kind(commands, perceived, truth).values())


def wrong_valid_frames(perceived: Sequence[GuidanceRow], truth: Sequence[GuidanceRow]) -> int:
    """Valid guidance whose controlled depth is more than ``WRONG_DEPTH_MM`` from the same source's truth."""
    truth_by_stamp = {t.stamp_ns: t for t in truth}
    count = 0
    for p in perceived:
        t = truth_by_stamp.get(p.stamp_ns)
        if t is None or not p.valid:
            continue
        true_depth = t.stent_mean_depth_mm if p.depth_source == DEPTH_SOURCE_STENT else t.tip_depth_mm
        count += abs(p.depth_mm - true_depth) > WRONG_DEPTH_MM
    return count


def trial_result(
    spec: TrialSpec,
    ended: str,
    perceived: Sequence[GuidanceRow],
    truth: Sequence[GuidanceRow],
    commands: Sequence[CommandRow],
    unsteered_asymmetry: float | None = None,
) -> TrialResult:
    """Score one trial from the rows the recorder kept; ``unsteered_asymmetry`` from
    :func:`unsteered_asymmetry_mm` when known."""
    truth = sorted(truth, key=lambda r: r.stamp_ns)
    last = truth[-1] if truth else None
    target = last.target_depth_mm if last else math.nan
    tolerance = last.depth_tolerance_mm if last else math.nan
    completed = any(DONE_REASON in c.reason for c in commands)

    final_error = final_asym = final_fraction = None
    if last is not None:
        final_error = last.depth_mm - target
        final_asym = last.stent_asymmetry_mm
        final_fraction = last.deployment_fraction
    depth_success = completed and final_error is not None and abs(final_error) <= SUCCESS_DEPTH_MM
    success = depth_success and final_asym is not None and final_asym < SYMMETRIC_MM

    t0 = truth[0].stamp_ns if truth else 0
    in_band = [r for r in truth if abs(r.depth_mm - target) <= tolerance]
    time_to_target = (in_band[0].stamp_ns - t0) * 1e-9 if in_band else None
    before_deployment = [r.tip_depth_mm for r in truth if r.depth_source != DEPTH_SOURCE_STENT]
    overshoot = max(0.0, max(before_deployment) - target) if before_deployment else None

    injected = {t.stamp_ns for t in truth if t.invalid_reason in (DROPPED_REASON, PEDAL_REASON)}
    # repeated pixels (frozen, grabber) are answered with nothing until frozen_after_s: not a drop
    repeats = {t.stamp_ns for t in truth if t.invalid_reason in (FROZEN_REASON, GRABBER_REPEAT_REASON)}
    answered = {p.stamp_ns for p in perceived if not p.invalid_reason.startswith(STALE_PREFIX)}
    first_answer = min((p.stamp_ns for p in perceived), default=None)
    expected = [
        t.stamp_ns
        for t in truth
        if first_answer is not None and t.stamp_ns >= first_answer and t.stamp_ns not in injected | repeats
    ]
    moves = moves_while_invalid_by_kind(commands, perceived, truth)
    return TrialResult(
        index=spec.index,
        case_seed=spec.case_seed,
        fault=spec.fault,
        ended=ended,
        completed=completed,
        success=bool(success),
        depth_success=bool(depth_success),
        unsteered_asymmetry_mm=unsteered_asymmetry,
        needs_steering=None if unsteered_asymmetry is None else unsteered_asymmetry >= SYMMETRIC_MM,
        final_depth_error_mm=final_error,
        final_asymmetry_mm=final_asym,
        final_deployment_fraction=final_fraction,
        time_to_target_s=time_to_target,
        overshoot_mm=overshoot,
        moves_while_invalid=sum(moves.values()),
        moves_while_invalid_by_kind=moves,
        wrong_valid_frames=wrong_valid_frames(perceived, truth),
        commands=len(commands),
        holds=sum(c.hold for c in commands),
        frames=len(truth),
        frames_dropped=sum(s not in answered for s in expected),
        frames_dropped_injected=len(injected),
    )


def summarize_trials(results: Sequence[TrialResult]) -> dict:
    """The run summary: success rate, final depth errors, moves while invalid, overall and per fault."""

    def block(rows: Sequence[TrialResult]) -> dict:
        errors = np.asarray(
            [abs(r.final_depth_error_mm) for r in rows if r.final_depth_error_mm is not None], dtype=float
        )
        times = [r.time_to_target_s for r in rows if r.time_to_target_s is not None]
        steered = [r for r in rows if r.needs_steering]
        return {
            "trials": len(rows),
            "success_rate": sum(r.success for r in rows) / len(rows) if rows else None,
            "depth_success_rate": sum(r.depth_success for r in rows) / len(rows) if rows else None,
            "trials_needing_steering": len(steered),
            "success_rate_needing_steering": sum(r.success for r in steered) / len(steered)
            if steered
            else None,
            "completed_rate": sum(r.completed for r in rows) / len(rows) if rows else None,
            "depth_error_mm_mean": float(errors.mean()) if errors.size else None,
            "depth_error_mm_p95": float(np.percentile(errors, 95)) if errors.size else None,
            "asymmetry_mm_max": max((r.final_asymmetry_mm or 0.0 for r in rows), default=None),
            "time_to_target_s_mean": float(np.mean(times)) if times else None,
            "overshoot_mm_max": max((r.overshoot_mm or 0.0 for r in rows), default=None),
            "moves_while_invalid": sum(r.moves_while_invalid for r in rows),
            "moves_while_invalid_by_kind": {
                k: sum(r.moves_while_invalid_by_kind[k] for r in rows) for k in MOVE_KINDS
            },
            "wrong_valid_frames": sum(r.wrong_valid_frames for r in rows),
            "frames_dropped": sum(r.frames_dropped for r in rows),
        }

    summary = block(results)
    faults = sorted({r.fault for r in results}, key=FAULTS.index)
    summary["by_fault"] = {f: block([r for r in results if r.fault == f]) for f in faults}
    return summary


def plot_trials(
    series: Sequence[tuple[TrialResult, np.ndarray, np.ndarray]],
    target_depth_mm: float,
    tolerance_mm: float,
    path: str,
) -> None:
    """True controlled depth vs time of every trial (``(result, t_s, depth_mm)``) with the target band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    ax.axhspan(
        target_depth_mm - tolerance_mm,
        target_depth_mm + tolerance_mm,
        color="tab:green",
        alpha=0.15,
        label=f"target band {target_depth_mm:g} ± {tolerance_mm:g} mm",
    )
    ax.axhline(target_depth_mm, color="tab:green", lw=0.8)
    labelled = set()
    for result, t_s, depth_mm in series:
        if result.success:
            colour, label = "tab:blue", "success"
        elif result.depth_success:
            colour, label = "tab:orange", f"depth reached, asymmetry >= {SYMMETRIC_MM:g} mm"
        else:
            colour, label = "tab:red", "failure"
        ax.plot(t_s, depth_mm, color=colour, lw=0.9, alpha=0.7, label=None if label in labelled else label)
        labelled.add(label)
        if len(t_s):
            ax.annotate(str(result.index), (t_s[-1], depth_mm[-1]), fontsize=6, color=colour)
    ax.set_xlabel("time from the first frame [s]")
    ax.set_ylabel("true depth below the annulus [mm] (tip, then stent)")
    ax.invert_yaxis()
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    n_ok = sum(r.success for r, _, _ in series)
    ax.set_title(f"Closed loop: true implantation depth, {n_ok}/{len(series)} trials successful")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
