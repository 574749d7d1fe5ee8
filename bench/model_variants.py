"""The models compared by ``bench_models.py`` (CPU) and ``bench_gpu.py`` (GPU): ours as shipped, ours with
the flip test, and the two published designs; their size (parameters, multiply-adds) and a timer.

Ours is the shipped ``models/tavi_keypoints.onnx`` (its ``.pt`` beside it). The published designs are
exported untrained from their architectures unless trained checkpoints are given: size and latency do
not depend on the weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tavi_perception.model.checkpoint import load_network, save_checkpoint
from tavi_perception.model.export import export
from tavi_perception.model.networks import DeployModel, ModelConfig, build_model, count_parameters

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "tavi_keypoints.onnx"
PUBLISHED = {"baseline": "grouped ResNet-34 (2025)", "mobilenetv2": "multi-task MobileNetV2 (2021)"}


@dataclass(frozen=True)
class Variant:
    label: str
    onnx: Path  # deploy graph (image -> xy, visibility, group probability)
    checkpoint: Path  # torch weights of the same network (the .pt beside a shipped model, or a checkpoint)
    input_size: int  # [px] network input of the deploy graph
    flip_test: bool
    weights: str  # "shipped", "untrained" or the trained checkpoint's path


def _untrained(arch: str, input_size: int, folder: Path) -> Path:
    config = ModelConfig(arch=arch, input_size=input_size)
    torch.manual_seed(0)
    path = folder / f"{arch}_untrained.pt"
    save_checkpoint(
        path, {"config": config.to_dict(), "model": build_model(config).state_dict(), "metadata": {}}
    )
    return path


def variants(
    folder: Path, published_input: int, checkpoints: dict[str, Path] | None = None, shipped: Path = SHIPPED
) -> list[Variant]:
    """Ours (shipped, and exported again with the flip test) and the two published designs, exported into
    ``folder``; ``checkpoints`` maps an architecture to trained weights (default: untrained)."""
    deploy = json.loads(shipped.with_suffix(".json").read_text())["deploy"]
    size = int(deploy["input_size"])
    pt = shipped.with_suffix(".pt")
    out = [Variant("ours", shipped, pt, size, bool(deploy["flip_test"]), "shipped")]
    flip = folder / "ours_flip_test.onnx"
    export(pt, flip, flip_test=True, input_size=size)
    out.append(Variant("ours + flip test", flip, pt, size, True, "shipped"))
    for arch, name in PUBLISHED.items():
        trained = (checkpoints or {}).get(arch)
        ckpt = trained or _untrained(arch, published_input, folder)
        onnx = folder / f"{arch}.onnx"
        export(ckpt, onnx, input_size=published_input)
        out.append(Variant(name, onnx, ckpt, published_input, False, str(trained or "untrained")))
    return out


def deploy_model(variant: Variant) -> DeployModel:
    net, _, _ = load_network(variant.checkpoint)
    return DeployModel(net, flip_test=variant.flip_test).eval()


def multiply_adds(model: nn.Module, input_size: int) -> int:
    """Multiply-accumulates of one forward pass on a ``(1, 1, S, S)`` input: convolutions and linear
    layers (everything else, batch norm folded at export, activations, pooling, is negligible)."""
    total = 0

    def conv(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    def linear(module: nn.Linear, inputs, _output) -> None:
        nonlocal total
        total += inputs[0].numel() * module.out_features

    hooks = [
        m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    with torch.inference_mode():
        model(torch.zeros(1, 1, input_size, input_size))
    for h in hooks:
        h.remove()
    return total


def size_of(variant: Variant) -> dict[str, float | int]:
    model = deploy_model(variant)
    return {
        "parameters": count_parameters(model.net),
        "multiply_adds": multiply_adds(model, variant.input_size),
        "onnx_bytes": variant.onnx.stat().st_size,
    }
