"""``tavi-perception export``: a checkpoint -> ONNX deploy graph + torch weights + metadata JSON.

Writes, for ``--out models/NAME.onnx``:
- ``NAME.onnx``: image ``(1, 1, S, S)`` float32 (standardised, see ``inference.processing``) ->
  ``xy`` ``(1, 11, 2)`` normalised to the input, ``visibility`` ``(1, 11)``, ``group_probability`` ``(1, 3)``;
  opset 18, torch's default (dynamo) exporter; the metadata is also stored in the file's properties;
- ``NAME.pt``: the network's config and (EMA) weights, for the torch backend, and the deploy options;
- ``NAME.json``: input size, keypoint and group names, training settings and seed, parameters,
  SHA-256 and size of both files, and the metrics of ``--metrics`` (an ``eval --json`` output file).

With ``--flip-test`` the graph also runs the mirrored image and averages (``networks.DeployModel``); the
option is recorded as ``deploy.flip_test`` in all three files, so the torch backend does the same.

The export is checked: ONNX Runtime and torch must agree on a random input, or the command fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from tavi_perception.inference.engines import INPUT_NAME, OUTPUT_NAMES, file_sha256
from tavi_perception.keypoints import KEYPOINT_NAMES, Group
from tavi_perception.model.checkpoint import load_checkpoint, load_network, save_checkpoint
from tavi_perception.model.networks import DeployModel, ModelConfig, count_parameters

LOG = logging.getLogger(__name__)
OPSET = 18
TOLERANCE = 1e-4  # max |ONNX Runtime - torch| accepted on the deploy outputs


def export_onnx(model: DeployModel, input_size: int, path: Path, metadata: dict) -> None:
    """Export ``model`` for a ``(1, 1, input_size, input_size)`` input, with ``metadata`` in the file."""
    import onnx

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    example = torch.zeros(1, 1, input_size, input_size)
    with warnings.catch_warnings():  # the exporter's own deprecation notices are not ours to act on
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(
            model.eval(),
            (example,),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path))
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "tavi_perception", json.dumps(metadata)
    onnx.save(proto, str(path))


def max_deviation(model: DeployModel, onnx_path: Path, input_size: int, seed: int = 0) -> float:
    """Largest |ONNX Runtime - torch| over the deploy outputs for a random standardised input."""
    import onnxruntime as ort

    x = np.random.default_rng(seed).standard_normal((1, 1, input_size, input_size)).astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
    with torch.inference_mode():
        want = model(torch.from_numpy(x))
    return max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want, strict=True))


def export(
    checkpoint: Path,
    out: Path,
    metrics: dict | None = None,
    flip_test: bool = False,
    input_size: int | None = None,
) -> dict:
    """Export ``checkpoint`` to ``out`` (+ ``.pt`` and ``.json`` beside it); returns the metadata written.

    ``input_size`` is the network input the deploy graph runs at (default: the trained one). Both
    networks are fully convolutional up to global pooling, so the same weights run at another size;
    ``config`` keeps the trained size, ``deploy.input_size`` holds the one the engines use.
    """
    if out.suffix != ".onnx":
        raise ValueError(f"--out must end in .onnx, got {out}")
    net, config, train_meta = load_network(checkpoint)
    deploy_size = input_size or config.input_size
    ModelConfig(arch=config.arch, input_size=deploy_size)  # the same checks as a trained size
    model = DeployModel(net, flip_test=flip_test).eval()
    deploy = {"flip_test": flip_test, "input_size": deploy_size}
    metadata = {
        "format": "tavi_perception.keypoints/1",
        "arch": config.arch,
        "config": config.to_dict(),
        "input": {
            "name": INPUT_NAME,
            "shape": [1, 1, deploy_size, deploy_size],
            "dtype": "float32",
        },
        "preprocessing": "grey float32, area-resize to the input size, per-image standardisation",
        "outputs": {
            "xy": "(1, 11, 2) normalised to input width/height, corner origin",
            "visibility": "(1, 11) probability",
            "group_probability": "(1, 3) probability",
        },
        "keypoint_names": list(KEYPOINT_NAMES),
        "group_names": [g.name.lower() for g in Group],
        "parameters": count_parameters(net),
        "deploy": deploy,
        "training": train_meta,
    }
    export_onnx(model, deploy_size, out, metadata)
    deviation = max_deviation(model, out, deploy_size)
    if deviation > TOLERANCE:
        raise RuntimeError(f"ONNX Runtime and torch disagree by {deviation:g} (> {TOLERANCE:g})")
    pt_path = out.with_suffix(".pt")
    state = load_checkpoint(checkpoint)
    save_checkpoint(
        pt_path,
        {
            "config": config.to_dict(),
            "model": state.get("ema") or state["model"],
            "metadata": train_meta,
            "deploy": deploy,
        },
    )
    sidecar = metadata | {
        "onnx": {"file": out.name, "sha256": file_sha256(out), "size_bytes": out.stat().st_size},
        "torch": {"file": pt_path.name, "sha256": file_sha256(pt_path), "size_bytes": pt_path.stat().st_size},
        "onnx_torch_max_deviation": deviation,
        "metrics": metrics or {},
    }
    out.with_suffix(".json").write_text(json.dumps(sidecar, indent=1) + "\n")
    return sidecar


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="tavi-perception export", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, type=Path, help="training checkpoint (e.g. runs/x/last.pt)")
    p.add_argument(
        "--out", required=True, type=Path, help="ONNX file to write (e.g. models/tavi_keypoints.onnx)"
    )
    p.add_argument("--metrics", type=Path, help="metrics to record: a file holding 'eval --json' output")
    p.add_argument(
        "--flip-test",
        action="store_true",
        help="also run the mirrored image and average (twice the network time; off in the shipped model)",
    )
    p.add_argument(
        "--input-size",
        type=int,
        help="network input [px] of the deploy graph, a multiple of 32 (default: the trained size)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    metrics = None
    try:
        if args.metrics:
            metrics = json.loads(args.metrics.read_text().strip().splitlines()[-1])
        meta = export(
            args.checkpoint, args.out, metrics, flip_test=args.flip_test, input_size=args.input_size
        )
    except (OSError, ValueError, RuntimeError) as err:
        print(f"tavi-perception export: {err}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out} ({meta['onnx']['size_bytes'] / 1e6:.2f} MB, sha256 {meta['onnx']['sha256']}), "
        f"{args.out.with_suffix('.pt')} and {args.out.with_suffix('.json')}; "
        f"ONNX Runtime vs torch max deviation {meta['onnx_torch_max_deviation']:.2g}"
    )
    return 0
