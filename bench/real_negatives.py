"""Real medical images with no TAVI scene in them: does the model detect keypoints there?

The only real images available from installable packages are pydicom's test files (its wheel ships
them): CT slices (head and body), nuclear-medicine whole-body scans, two MR images, a liver segmentation
mask and a secondary-capture image. None holds a delivery system, a pigtail or contrast in an aortic
root, so every keypoint the model reports there is a false detection. Each distinct greyscale image is
windowed to mono8 (1st-99th percentile), resized to 512², and shown whole, as its four quadrants and
its centre half, each also mirrored (12 frames per image). Reports, per model, the frames with no
keypoint at visibility >= 0.5 and the highest visibility per keypoint.
Writes ``bench/results/real_negatives.json``.

    .venv/bin/python bench/real_negatives.py --models models/tavi_keypoints.onnx runs/stage5/model.onnx
"""

from __future__ import annotations

import hashlib
import sys
import warnings
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pydicom
from benchlib import RESULTS_DIR, bench_parser, write_results

from tavi_perception.inference.engines import create_engine, file_sha256
from tavi_perception.keypoints import KEYPOINT_NAMES

THRESHOLD = 0.5
MIN_SIDE_PX = 64  # smaller test images (a few pixels) are not pictures


def real_images() -> dict[str, np.ndarray]:
    """{file name: float image} of pydicom's decodable greyscale test images, one per distinct content."""
    folder = Path(str(resources.files("pydicom") / "data" / "test_files"))
    images, seen = {}, set()
    for path in sorted(folder.glob("*.dcm")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path)
                grey = str(ds.get("PhotometricInterpretation", "")).startswith("MONO")
                if "PixelData" not in ds or not grey:
                    continue
                pixels = ds.pixel_array.astype(np.float64)
            except Exception as err:  # a test file this build cannot decode (or a broken one) is skipped
                print(f"skip {path.name}: {type(err).__name__}", file=sys.stderr)
                continue
        if pixels.ndim != 2 or min(pixels.shape) < MIN_SIDE_PX:
            continue
        digest = hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            images[path.name] = pixels
    return images


def views(pixels: np.ndarray) -> list[np.ndarray]:
    """Mono8 512² frames of an image: whole, quadrants, centre half; each also mirrored."""
    lo, hi = np.percentile(pixels, [1, 99])
    mono8 = np.clip((pixels - lo) / max(hi - lo, 1e-9) * 255.0, 0, 255).astype(np.uint8)
    h, w = mono8.shape
    crops = [mono8, mono8[: h // 2, : w // 2], mono8[: h // 2, w // 2 :], mono8[h // 2 :, : w // 2]]
    crops += [mono8[h // 2 :, w // 2 :], mono8[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]]
    frames = [cv2.resize(c, (512, 512), interpolation=cv2.INTER_AREA) for c in crops]
    return frames + [np.ascontiguousarray(f[:, ::-1]) for f in frames]


def main() -> None:
    parser = bench_parser(__doc__, RESULTS_DIR / "real_negatives.json")
    parser.add_argument("--models", type=Path, nargs="+", default=[Path("models/tavi_keypoints.onnx")])
    args = parser.parse_args()
    images = real_images()
    frames = [(name, f) for name, pixels in images.items() for f in views(pixels)]
    results = {"what": __doc__.splitlines()[0], "images": sorted(images), "frames": len(frames), "models": []}
    for model in args.models:
        engine = create_engine(model, backend="onnxruntime", threads=2)
        vis = np.stack([engine.infer(f).visibility for _, f in frames])
        detected = vis >= THRESHOLD
        results["models"].append(
            {
                "model": str(model),
                "sha256": file_sha256(model),
                "frames_with_no_detection": int((~detected.any(axis=1)).sum()),
                "share_with_no_detection": float((~detected.any(axis=1)).mean()),
                "max_visibility": {n: round(float(vis[:, k].max()), 3) for k, n in enumerate(KEYPOINT_NAMES)},
                "frames_detecting": {n: int(detected[:, k].sum()) for k, n in enumerate(KEYPOINT_NAMES)},
            }
        )
        m = results["models"][-1]
        print(f"{model}: {m['frames_with_no_detection']}/{len(frames)} frames with no keypoint detected")
    write_results(args.out, results)


if __name__ == "__main__":
    main()
