"""What the benchmark scripts share: where results go, the command line's ``--out``, time summaries.

The scripts run as ``.venv/bin/python bench/bench_<name>.py``, so this folder is first on ``sys.path``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
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


def synthetic_frame(size: int = 512, dtype: type = np.uint8) -> np.ndarray:
    """A smooth, noisy frame of ``size``² (content does not change the cost of inference, only realism)."""
    rng = np.random.default_rng(size)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 0.45 + 0.2 * np.sin(11 * xx + 3 * yy) * np.cos(7 * yy) + 0.03 * rng.standard_normal((size, size))
    return (np.clip(img, 0, 1) * np.iinfo(dtype).max).astype(dtype)


def latency_ms(fn: Callable[[], object], runs: int, warmup: int) -> dict[str, float]:
    """p50, p99 and mean of ``runs`` timed calls after ``warmup`` untimed ones [ms]."""
    for _ in range(warmup):
        fn()
    t = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        fn()
        t[i] = time.perf_counter() - start
    t *= 1e3
    return {
        "p50_ms": round(float(np.percentile(t, 50)), 3),
        "p99_ms": round(float(np.percentile(t, 99)), 3),
        "mean_ms": round(float(t.mean()), 3),
        "runs": runs,
    }
