"""How far the fixed CT test split's C-arm views are from every view used in training.

Reads the ``c_arm`` angles of every image of the test split and of the training sets and reports, per
test case, the angle between its beam direction and the nearest training beam direction (primary and
secondary angles combined on the sphere). Writes ``bench/results/ct_split_views.json``.

    .venv/bin/python bench/ct_split_views.py --test data/test_ct --train data/train_ct6
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def beam_directions(annotations: Path) -> tuple[np.ndarray, list[int]]:
    """Unit beam directions (N, 3) of the positive frames' views, one per case, and the case ids."""
    images = json.loads(annotations.read_text())["images"]
    views = {im["case_id"]: im["c_arm"] for im in images if not im.get("negative")}
    cases = sorted(views)
    lao = np.radians([views[c]["lao_deg"] for c in cases])
    cran = np.radians([views[c]["cran_deg"] for c in cases])
    return np.stack([np.sin(lao) * np.cos(cran), np.sin(cran), np.cos(lao) * np.cos(cran)], axis=1), cases


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--test", type=Path, required=True)
    p.add_argument("--train", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, default=Path("bench/results/ct_split_views.json"))
    args = p.parse_args()
    test, cases = beam_directions(args.test / "annotations.json")
    train = np.concatenate([beam_directions(d / "annotations.json")[0] for d in args.train])
    nearest_deg = np.degrees(np.arccos(np.clip(test @ train.T, -1.0, 1.0))).min(axis=1)
    result = {
        "what": "angle between each test case's beam and the nearest training beam [deg]",
        "test": str(args.test),
        "train": [str(d) for d in args.train],
        "test_views": len(cases),
        "train_views": len(train),
        "nearest_deg": {
            "min": float(nearest_deg.min()),
            "median": float(np.median(nearest_deg)),
            "max": float(nearest_deg.max()),
        },
        "per_case_nearest_deg": {str(c): round(float(d), 3) for c, d in zip(cases, nearest_deg, strict=True)},
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["nearest_deg"]))


if __name__ == "__main__":
    main()
