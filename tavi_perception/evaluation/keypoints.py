"""``tavi-perception eval``: detection and localisation metrics of a model on annotated frames.

Every frame goes through the inference engine exactly as the perception node runs it (the same
pre-processing, graph and post-processing), so the figures are those of the shipped pipeline.
``--baseline`` evaluates a second model in the same run and prints both side by side; ``--compare`` adds
any number of further models to the same table (e.g. the published designs, docs/comparison.md). The metric
definitions are in :mod:`tavi_perception.evaluation.metrics`. With ``--json`` the last line of the output is
one JSON object: the overall figures of ``--model`` (precision, recall, f1, mean_error_px, loc_acc_5px,
loc_acc_5pct, tp, fp, fn), ``frames``, ``empty_frames`` (frames with no keypoint annotated, e.g. negatives,
and how many of them had no keypoint detected), ``groups``, ``keypoints``, ``baseline`` when given, and
``compare``, the same summary of each ``--compare`` model in order, when given.

``--refine MODEL`` runs every model with the valve refinement as the perception node's ``refine_valve``
does (:mod:`tavi_perception.inference.refinement`: FE1/FE2 read again on a crop of the frame),
``--refine-root MODEL`` with the root refinement (``refine_root``: AA1, AA2, STJ1, STJ2); the crops are
sized in millimetres, so every frame needs its ``mm_per_px`` (the simulator's datasets have it).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tavi_perception.evaluation.metrics import compute_metrics, format_table, json_safe
from tavi_perception.inference.engines import BACKENDS, create_engine
from tavi_perception.inference.refinement import create_refinements
from tavi_perception.model.datasets import DatasetError, Sample, load_samples, read_image


def evaluate_model(
    model_path: Path,
    samples: list[Sample],
    backend: str = "auto",
    threads: int = 2,
    threshold: float = 0.5,
    refine_path: Path | None = None,
    refine_root_path: Path | None = None,
) -> tuple[dict, str]:
    """(metrics, backend string) of one model over ``samples``, with the valve and root refinements by
    the models at ``refine_path`` and ``refine_root_path`` when given (every sample then needs
    ``meta["mm_per_px"]``: ``ValueError`` otherwise)."""
    engine = create_engine(model_path, backend=backend, threads=threads)
    refinements = create_refinements(refine_path, refine_root_path, backend=backend, threads=threads)
    if refinements:
        unscaled = [s.image_path.name for s in samples if not s.meta.get("mm_per_px")]
        if unscaled:
            raise ValueError(
                f"--refine needs each frame's mm_per_px; {len(unscaled)} lack it ({unscaled[0]}, ...)"
            )
    xy = np.zeros((len(samples), 11, 2))
    vis = np.zeros((len(samples), 11))
    for i, s in enumerate(tqdm(samples, desc=f"eval {model_path.name}", file=sys.stderr, leave=False)):
        image = read_image(s.image_path)
        det = engine.infer(image)
        for refinement in refinements:
            det = refinement(image, det, float(s.meta["mm_per_px"]))
        xy[i], vis[i] = det.xy_px, det.visibility
    gt_xy = np.stack([s.xy_px for s in samples])
    gt_vis = np.stack([s.visible for s in samples])
    wh = np.array([[s.width, s.height] for s in samples])
    return compute_metrics(gt_xy, gt_vis, xy, vis, wh, threshold), engine.backend


def summary(metrics: dict, model_path: Path, backend: str) -> dict:
    return {
        **metrics["overall"],
        "frames": metrics["frames"],
        "empty_frames": metrics["empty_frames"],
        "model": str(model_path),
        "backend": backend,
    } | {
        "groups": metrics["groups"],
        "keypoints": metrics["keypoints"],
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="tavi-perception eval", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, type=Path, help="model: .onnx (ONNX Runtime) or .pt (torch)")
    p.add_argument("--data", required=True, type=Path, help="annotated frames: dataset folder or COCO JSON")
    p.add_argument("--baseline", type=Path, help="a second model evaluated beside --model")
    p.add_argument(
        "--compare", type=Path, nargs="+", default=[], help="further models evaluated in the same table"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="inference backend (default: auto)")
    p.add_argument("--threads", type=int, default=2, help="inference threads (default: 2)")
    p.add_argument("--threshold", type=float, default=0.5, help="visibility threshold (default: 0.5)")
    p.add_argument("--limit", type=int, help="evaluate only the first N frames")
    p.add_argument(
        "--refine", type=Path, help="valve-refinement model run after every model (e.g. the shipped one)"
    )
    p.add_argument("--refine-root", type=Path, help="root-refinement model run after every model")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not 0.0 < args.threshold < 1.0:
        print("tavi-perception eval: --threshold must be in (0, 1)", file=sys.stderr)
        return 2
    try:
        samples = load_samples(args.data)[: args.limit]
        results, backends = {}, {}
        models = [("model", args.model), ("baseline", args.baseline)]
        models += [(f"compare{i}", path) for i, path in enumerate(args.compare)]
        for label, path in models:
            if path is not None:
                results[label], backends[label] = evaluate_model(
                    path, samples, args.backend, args.threads, args.threshold, args.refine, args.refine_root
                )
    except (DatasetError, FileNotFoundError, ValueError) as err:
        print(f"tavi-perception eval: {err}", file=sys.stderr)
        return 2
    labels = {
        "model": args.model.stem,
        "baseline": f"{args.baseline.stem} (baseline)" if args.baseline else "",
    } | {f"compare{i}": path.stem for i, path in enumerate(args.compare)}
    title = f"{args.data}: {len(samples)} frames, visibility threshold {args.threshold}, errors at 512² px"
    if args.refine is not None:
        title += f", valve refinement {args.refine}"
    if args.refine_root is not None:
        title += f", root refinement {args.refine_root}"
    print(format_table({labels[k]: v for k, v in results.items()}, title=title))
    if args.json:
        out = summary(results["model"], args.model, backends["model"])
        out["refine"] = None if args.refine is None else str(args.refine)
        out["refine_root"] = None if args.refine_root is None else str(args.refine_root)
        if "baseline" in results:
            out["baseline"] = summary(results["baseline"], args.baseline, backends["baseline"])
        if args.compare:
            keys = [f"compare{i}" for i in range(len(args.compare))]
            out["compare"] = [
                summary(results[k], p, backends[k]) for k, p in zip(keys, args.compare, strict=True)
            ]
        print(json.dumps(json_safe(out)))
    return 0
