"""What the benchmark scripts share: where results go, the command line's ``--out``, time summaries.

The scripts run as ``.venv/bin/python bench/bench_<name>.py``, so this folder is first on ``sys.path``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def bench_parser(doc: str, out: Path) -> argparse.ArgumentParser:
    """A parser described by the first line of ``doc``, with ``--out`` (the result file, default ``out``)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=out, help=f"result file (default {out})")
    return parser


def write_results(path: Path, results: dict[str, object]) -> None:
    """``results`` as indented JSON at ``path`` (its folder created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def times_ms(values_ms: list[float]) -> dict[str, float]:
    """Mean, median, 95th percentile and maximum of times [ms], to the microsecond."""
    a = np.asarray(values_ms)
    return {
        "mean_ms": round(float(a.mean()), 3),
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p95_ms": round(float(np.percentile(a, 95)), 3),
        "max_ms": round(float(a.max()), 3),
    }
