"""The ``tavi-perception`` command: one entry point, one sub-command per job.

Each sub-command lives in the module that owns the job and exposes ``main(argv: list[str]) -> int``;
this file only maps names to those modules, imported lazily so ``--help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "tavi_perception.runners.demo",
        "the simulated procedure through real ROS 2 nodes; report in runs/<name>/",
    ),
    "loop": (
        "tavi_perception.runners.loop",
        "closed-loop trials (randomised cases, injected faults) through real ROS 2 nodes",
    ),
    "run": (
        "tavi_perception.runners.run",
        "perception over a recording (DICOM, video, image folder): overlay MP4, CSV, MCAP bag, report",
    ),
    "publish": (
        "tavi_perception.ros.source_node",
        "publish a recording as sensor_msgs/Image at its frame rate, with its calibration",
    ),
    "bag": (
        "tavi_perception.ros.bag",
        "rosbag2 (MCAP/sqlite3) record | play | info | convert (a recording into a bag)",
    ),
    "dataset": ("tavi_perception.sim.dataset", "synthetic fluoroscopy + COCO keypoints + true geometry"),
    "crops": ("tavi_perception.model.crops", "valve-refinement training crops from rendered datasets"),
    "sim-montage": ("tavi_perception.sim.montage", "PNG of simulator renders with the truth drawn"),
    "train": (
        "tavi_perception.model.train",
        "train a keypoint network (ours or a published design); resumable, CUDA, torchrun",
    ),
    "eval": ("tavi_perception.evaluation.keypoints", "keypoint detection/localisation metrics on a dataset"),
    "export": ("tavi_perception.model.export", "checkpoint -> ONNX + torch weights + metadata JSON"),
    "plan": (
        "tavi_perception.plan.cli",
        "preoperative plan: annulus plane, S-curve, cusp-overlap/three-cusp views",
    ),
    "eval-tracking": (
        "tavi_perception.evaluation.tracking",
        "tracker + geometry on simulated sequences vs the truth",
    ),
}


def _usage() -> str:
    lines = ["usage: tavi-perception <command> [options]", "", "commands:"]
    width = max((len(n) for n in COMMANDS), default=0)
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines.append("")
    lines.append("Run 'tavi-perception <command> --help' for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"tavi-perception: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
