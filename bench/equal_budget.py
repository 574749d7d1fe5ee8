"""Ours and the two published designs trained from scratch at an equal wall-clock budget, compared.

    nice .venv/bin/python bench/equal_budget.py --minutes 12     # -> bench/results/equal_budget.json

Each design (``--arch heatmap``, ours; ``baseline``, the 2025 grouped ResNet-34; ``mobilenetv2``, the 2021
multi-task regressor; docs/comparison.md) trains from random weights on the same frames (``--data``),
with the same batch, seed, augmentation, input size and threads, for the same wall-clock on this machine:
a 30-step probe measures its training speed, and its step count is the budget times that speed, so that
its learning-rate schedule runs to its end inside the budget. Validation on ``--val`` every quarter of
the run keeps the best checkpoint, exported at the training input size. One ``eval --compare`` per test
split then gives the table (P, R, F1, mean and median px, per group and point). Ours is also trained
for each published design's number of images seen (``heatmap_images_of_<arch>``: the same steps and
batch), the other fair budget, and evaluated in the same table. Run it on an otherwise idle machine:
the wall-clock budget is shared with anything else on the cores.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from benchlib import RESULTS_DIR, bench_parser, write_results

from tavi_perception.inference.engines import file_sha256

CLI = [sys.executable, "-m", "tavi_perception.cli"]
LEARNING_RATE = {"heatmap": 3e-3, "baseline": 1e-3, "mobilenetv2": 1e-3}  # ours: its stage-1 rate
PROBE_STEPS = 30


def run(args: list[str], log: Path) -> None:
    """Run a ``tavi-perception`` command, its output to ``log``; raise with the log's tail on failure."""
    with log.open("w") as out:
        done = subprocess.run(CLI + args, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(args)} failed ({done.returncode}):\n{log.read_text()[-2000:]}")


def images_per_s(run_dir: Path) -> float:
    """Training speed [images/s] over the run in ``run_dir`` (its last train_log record)."""
    lines = (run_dir / "train_log.jsonl").read_text().splitlines()
    return float(json.loads(lines[-1])["img_s"])


def main() -> int:
    p = bench_parser(__doc__, RESULTS_DIR / "equal_budget.json")
    p.add_argument("--minutes", type=float, default=15.0, help="training wall-clock per design (default 15)")
    p.add_argument("--archs", nargs="+", default=list(LEARNING_RATE), choices=list(LEARNING_RATE))
    p.add_argument("--data", nargs="+", default=["data/train_s6", "data/train_ct6"], help="training frames")
    p.add_argument("--val", default="data/val_ct6", help="validation frames (best checkpoint)")
    p.add_argument("--tests", nargs="+", default=["data/test", "data/test_ct"], help="test splits")
    p.add_argument("--runs", type=Path, default=Path("runs/equal_budget"), help="run folders")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.runs.exists():
        raise SystemExit(f"{args.runs} exists: remove it or choose another --runs")
    args.runs.mkdir(parents=True)
    common = [
        "--data", *args.data, "--batch-size", str(args.batch_size), "--input-size", str(args.input_size),
        "--threads", str(args.threads), "--seed", str(args.seed),
    ]  # fmt: skip
    results: dict[str, object] = {
        "command": "nice .venv/bin/python bench/equal_budget.py " + shlex.join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "budget": f"{args.minutes:g} minutes of training wall-clock per design, from scratch; ours also "
        "at each published design's number of images seen (heatmap_images_of_*)",
        "designs": {},
    }
    models: dict[str, Path] = {}

    def train(name: str, arch: str, steps: int, probe_speed: float | None) -> None:
        """Train ``arch`` for ``steps`` into ``runs/name``, export its best checkpoint, record it."""
        lr = LEARNING_RATE[arch]
        out = args.runs / name
        schedule = ["--steps", str(steps), "--warmup", str(min(100, steps // 10))]
        validation = ["--val", args.val, "--val-every", str(max(steps // 4, 1))]
        started = time.monotonic()
        run(["train", "--arch", arch, *common, "--lr", str(lr), "--out", str(out), *schedule, *validation],
            args.runs / f"train_{name}.log")  # fmt: skip
        train_s = time.monotonic() - started
        onnx = out / f"{name}.onnx"
        run(
            ["export", "--checkpoint", str(out / "best.pt"), "--out", str(onnx)],
            args.runs / f"export_{name}.log",
        )
        models[name] = onnx
        results["designs"][name] = {
            "arch": arch,
            "lr": lr,
            "probe_images_per_s": probe_speed,
            "steps": steps,
            "images_seen": steps * args.batch_size,
            "train_wall_s": round(train_s, 1),
            "validation": [json.loads(line) for line in (out / "val_log.jsonl").read_text().splitlines()],
            "onnx": str(onnx),
            "onnx_sha256": file_sha256(onnx),
            "pt_sha256": file_sha256(onnx.with_suffix(".pt")),
        }
        write_results(args.out, results)
        print(f"{name}: {steps} steps in {train_s:.0f} s", flush=True)

    steps_by_arch = {}
    for arch in args.archs:  # equal wall-clock
        probe = args.runs / f"probe_{arch}"
        run(["train", "--arch", arch, *common, "--lr", str(LEARNING_RATE[arch]), "--out", str(probe),
             "--steps", "100000", "--stop-after", str(PROBE_STEPS), "--log-every", "10",
             "--checkpoint-every", "100000"], args.runs / f"probe_{arch}.log")  # fmt: skip
        speed = images_per_s(probe)
        steps_by_arch[arch] = max(int(args.minutes * 60.0 * speed / args.batch_size), 40)
        train(arch, arch, steps_by_arch[arch], speed)
    if "heatmap" in steps_by_arch:  # ours again at each published design's number of images seen
        for arch, steps in steps_by_arch.items():
            if arch != "heatmap":
                train(f"heatmap_images_of_{arch}", "heatmap", steps, None)
    first, *others = models.values()
    evaluations = {}
    for test in args.tests:
        log = args.runs / f"eval_{Path(test).name}.txt"
        run(["eval", "--model", str(first), "--compare", *map(str, others), "--data", test, "--json"], log)
        evaluations[test] = {"table": str(log), "metrics": json.loads(log.read_text().splitlines()[-1])}
    results["eval"] = evaluations
    write_results(args.out, results)
    print(
        json.dumps({a: {k: d[k] for k in ("steps", "train_wall_s")} for a, d in results["designs"].items()})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
