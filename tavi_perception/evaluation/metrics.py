"""Detection and localisation metrics (defined below), overall, per group and per keypoint.

Per frame and keypoint: TP = present in the ground truth and predicted present (visibility >= threshold),
FN = ground truth only, FP = prediction only (both absent counts nowhere). Precision, recall and F1 from
the summed counts. Localisation over TP only: the error is measured at 512² (each axis scaled by
512 / image size), its mean (and median) in pixels, and the share of TP within 5 px and within 0.05
of the image size.
Undefined figures (no TP, nothing predicted) are NaN, written as null in JSON and "-" in tables.
"""

from __future__ import annotations

import math

import numpy as np

from tavi_perception.keypoints import KEYPOINT_GROUP, KEYPOINT_NAMES, NUM_KEYPOINTS, Group

REFERENCE_SIZE_PX = 512
LOC_TOLERANCE_PX = 5.0
LOC_TOLERANCE_FRACTION = 0.05
METRIC_KEYS = (
    "tp",
    "fp",
    "fn",
    "precision",
    "recall",
    "f1",
    "mean_error_px",
    "median_error_px",
    "loc_acc_5px",
    "loc_acc_5pct",
)


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def _summarise(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, err: np.ndarray) -> dict[str, float]:
    """Figures over the selected entries; ``err`` holds errors at 512² (NaN where not TP)."""
    n_tp, n_fp, n_fn = int(tp.sum()), int(fp.sum()), int(fn.sum())
    p, r = _ratio(n_tp, n_tp + n_fp), _ratio(n_tp, n_tp + n_fn)
    f1 = 2 * p * r / (p + r) if not (math.isnan(p) or math.isnan(r)) and p + r > 0 else math.nan
    e = err[tp]
    return {
        "tp": n_tp,
        "fp": n_fp,
        "fn": n_fn,
        "precision": p,
        "recall": r,
        "f1": f1,
        "mean_error_px": float(e.mean()) if e.size else math.nan,
        "median_error_px": float(np.median(e)) if e.size else math.nan,
        "loc_acc_5px": _ratio(float((e <= LOC_TOLERANCE_PX).sum()), e.size),
        "loc_acc_5pct": _ratio(float((e <= LOC_TOLERANCE_FRACTION * REFERENCE_SIZE_PX).sum()), e.size),
    }


def compute_metrics(
    gt_xy: np.ndarray,
    gt_visible: np.ndarray,
    pred_xy: np.ndarray,
    pred_visibility: np.ndarray,
    image_wh: np.ndarray,
    threshold: float = 0.5,
) -> dict:
    """Metrics for N frames: ``gt_xy``/``pred_xy`` (N, 11, 2) px, ``gt_visible`` (N, 11) bool,
    ``pred_visibility`` (N, 11) probabilities, ``image_wh`` (N, 2) or (2,) image width and height.

    Returns ``{"overall": {...}, "groups": {name: {...}}, "keypoints": {name: {...}}, "frames": N,
    "empty_frames": {...}}``; ``empty_frames`` covers the frames with no keypoint annotated (negatives:
    no TAVI scene): how many, and how many of them the model left empty (no keypoint detected).
    """
    gt_xy = np.asarray(gt_xy, dtype=np.float64)
    pred_xy = np.asarray(pred_xy, dtype=np.float64)
    gt_vis = np.asarray(gt_visible, dtype=bool)
    n = gt_vis.shape[0]
    if gt_xy.shape != (n, NUM_KEYPOINTS, 2) or pred_xy.shape != gt_xy.shape:
        raise ValueError(
            f"expected (N, {NUM_KEYPOINTS}, 2) coordinates, got {gt_xy.shape} and {pred_xy.shape}"
        )
    pred_vis = np.asarray(pred_visibility, dtype=np.float64) >= threshold
    if pred_vis.shape != gt_vis.shape:
        raise ValueError(f"visibility shapes differ: {pred_vis.shape} vs {gt_vis.shape}")
    scale = REFERENCE_SIZE_PX / np.broadcast_to(np.asarray(image_wh, dtype=np.float64), (n, 2))
    err = np.linalg.norm((pred_xy - gt_xy) * scale[:, None, :], axis=2)
    tp, fp, fn = gt_vis & pred_vis, ~gt_vis & pred_vis, gt_vis & ~pred_vis
    err = np.where(tp, err, np.nan)
    group_of = np.array([int(g) for g in KEYPOINT_GROUP])
    empty = ~gt_vis.any(axis=1)
    left_empty = int((empty & ~pred_vis.any(axis=1)).sum())
    return {
        "frames": int(n),
        "empty_frames": {
            "frames": int(empty.sum()),
            "none_detected": left_empty,
            "none_detected_rate": left_empty / int(empty.sum()) if empty.any() else math.nan,
        },
        "overall": _summarise(tp, fp, fn, err),
        "groups": {
            g.name.lower(): _summarise(
                tp[:, group_of == g], fp[:, group_of == g], fn[:, group_of == g], err[:, group_of == g]
            )
            for g in Group
        },
        "keypoints": {
            name: _summarise(tp[:, k], fp[:, k], fn[:, k], err[:, k]) for k, name in enumerate(KEYPOINT_NAMES)
        },
    }


def _cell(value: float, key: str) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "-"
    return f"{value:.2f}" if key.endswith("_error_px") else f"{value:.4f}"


def format_table(results: dict[str, dict], title: str = "") -> str:
    """Text table of ``{model label: compute_metrics(...)}``: per scope, one row per model, side by side."""
    header = ("scope", "model", "TP", "FP", "FN", "P", "R", "F1", "err px", "median", "acc@5px", "acc@5%")
    first = next(iter(results.values()))
    scopes = [("all", ("overall",))]
    scopes += [(f"group {g}", ("groups", g)) for g in first["groups"]]
    scopes += [(f"  {k}", ("keypoints", k)) for k in first["keypoints"]]
    rows = []
    for scope, path in scopes:
        for label, m in results.items():
            v = m[path[0]] if len(path) == 1 else m[path[0]][path[1]]
            rows.append((scope, label, *(_cell(v[key], key) for key in METRIC_KEYS)))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    lines = [title] if title else []
    lines += [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
    for label, m in results.items():
        empty = m["empty_frames"]
        if empty["frames"]:
            lines.append(
                f"frames with no keypoint annotated ({label}): {empty['none_detected']} of {empty['frames']} "
                f"with no keypoint detected ({empty['none_detected_rate']:.2%})"
            )
    return "\n".join(lines)


def json_safe(obj):
    """``obj`` with NaN floats replaced by None (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj
