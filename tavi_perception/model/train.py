"""``tavi-perception train``: train a keypoint network on annotated frames (synthetic, COCO or Supervisely).

Deterministic (for a fixed ``--threads`` and device) and resumable: the frame order of epoch ``e`` is a
permutation drawn from ``(seed, e)`` and the augmentation of the ``p``-th frame of the run from
``(seed, p)``, so step ``s`` always sees the same global batch; ``--resume`` continues from
``OUT/last.pt`` (model, EMA, optimiser, schedule, gradient scaler, step, torch RNG, best-so-far) and gives
the same weights as an uninterrupted run. Checkpoints are written atomically every
``--checkpoint-every`` steps and at the end; ``OUT/train_log.jsonl`` records the losses.

With ``--val`` the weights the export would ship (the EMA ones) are validated at the end, and with
``--val-every N`` also every N steps; each result is appended to ``OUT/val_log.jsonl``, the best so far
is kept in ``OUT/best.pt`` (highest overall F1; equal F1: lower mean error) and ``OUT/val_metrics.json``
holds the final figures.

``--device cuda`` trains on the GPU with mixed precision (float16 autocast and a gradient scaler;
``--no-amp`` keeps float32); on the CPU training is float32. Launched by ``torchrun`` the command trains
data-parallel (``model.distributed``): ``--batch-size`` stays the global batch, each process takes its
share, and the run is the same as one process's up to floating-point summation order; rank 0 writes
the checkpoints and logs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from tavi_perception.evaluation.metrics import compute_metrics, format_table, json_safe
from tavi_perception.inference.engines import file_sha256
from tavi_perception.inference.processing import preprocess, resize_square, standardize, to_image_pixels
from tavi_perception.model import distributed
from tavi_perception.model.augment import AugmentConfig, augment, to_unit_range
from tavi_perception.model.checkpoint import load_checkpoint, save_checkpoint
from tavi_perception.model.datasets import DatasetError, Sample, load_samples, read_image
from tavi_perception.model.distributed import World
from tavi_perception.model.losses import Total, baseline_loss, heatmap_loss, local, multitask_loss
from tavi_perception.model.networks import (
    ARCHITECTURES,
    DeployModel,
    ModelConfig,
    build_model,
    count_parameters,
)

LOG = logging.getLogger(__name__)


def prepare_sample(
    sample: Sample, input_size: int, rng: np.random.Generator | None = None, cfg: AugmentConfig | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(standardised ``(S, S)`` input, keypoints ``(11, 2)`` in input pixels, visible ``(11,)``).

    Without ``rng`` this is exactly the inference pre-processing; with it, the frame is augmented.
    """
    raw = read_image(sample.image_path)
    if raw.shape[:2] != (sample.height, sample.width):
        raise DatasetError(
            f"{sample.image_path}: image is {raw.shape[1]}x{raw.shape[0]}, annotation says "
            f"{sample.width}x{sample.height}"
        )
    img = resize_square(to_unit_range(raw), input_size)
    xy = sample.xy_px * np.array([input_size / sample.width, input_size / sample.height])
    vis = sample.visible.copy()
    if rng is not None:
        img, xy, vis = augment(img, xy, vis, rng, cfg or AugmentConfig())
    return standardize(img), xy, vis


class TrainStream(Dataset):
    """Item ``p`` = the ``p``-th frame of the run (epoch ``p // n``), augmented from ``(seed, p)``."""

    def __init__(self, samples: list[Sample], input_size: int, seed: int, cfg: AugmentConfig | None):
        self.samples, self.input_size, self.seed, self.cfg = samples, input_size, seed, cfg
        self._perm_epoch, self._perm = -1, np.arange(0)

    def __len__(self) -> int:  # positions are unbounded; the sampler decides which are used
        return sys.maxsize

    def _index(self, position: int) -> int:
        epoch, k = divmod(position, len(self.samples))
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.samples))
            self._perm_epoch = epoch
        return int(self._perm[k])

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sample = self.samples[self._index(position)]
        rng = np.random.default_rng([self.seed, 1, position]) if self.cfg is not None else None
        img, xy, vis = prepare_sample(sample, self.input_size, rng, self.cfg)
        return torch.from_numpy(img[None]), torch.from_numpy(xy.astype(np.float32)), torch.from_numpy(vis)


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up then cosine decay to 1 % of the peak learning rate."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


class Ema:
    """Exponential moving average of all floating-point weights and buffers (warm-up of the decay)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.state[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.state[k].copy_(v)


@torch.no_grad()
def predict(
    model: DeployModel, samples: list[Sample], input_size: int, batch_size: int = 32, device: str = "cpu"
):
    """(xy px (N, 11, 2), visibility (N, 11)) in each frame's own pixels, via the inference pre-processing."""
    model.eval().to(device)
    xy_all, vis_all = [], []
    for start in tqdm(range(0, len(samples), batch_size), desc="validate", leave=False, file=sys.stderr):
        chunk = samples[start : start + batch_size]
        batch = np.concatenate([preprocess(read_image(s.image_path), input_size) for s in chunk])
        xy, vis, _ = (o.float().cpu() for o in model(torch.from_numpy(batch).to(device)))
        for s, p in zip(chunk, xy.numpy(), strict=True):
            xy_all.append(to_image_pixels(p, (s.height, s.width)))
        vis_all.append(vis.numpy())
    return np.stack(xy_all), np.concatenate(vis_all)


def validate(net: torch.nn.Module, samples: list[Sample], input_size: int, device: str = "cpu") -> dict:
    xy, vis = predict(DeployModel(net), samples, input_size, device=device)
    return compute_metrics(
        np.stack([s.xy_px for s in samples]),
        np.stack([s.visible for s in samples]),
        xy,
        vis,
        np.array([[s.width, s.height] for s in samples]),
    )


def _dataset_info(path: Path) -> dict:
    info_path = path / "dataset.json" if path.is_dir() else path.parent / "dataset.json"
    return json.loads(info_path.read_text()) if info_path.is_file() else {}


def _datasets_metadata(paths: list[Path]) -> dict:
    """``{"dataset": info}`` for one training set, ``{"datasets": [info, ...]}`` for several."""
    infos = [_dataset_info(path) for path in paths]
    return {"dataset": infos[0]} if len(infos) == 1 else {"datasets": infos}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tavi-perception train", description=__doc__.split("\n")[0])
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        nargs="+",
        help="training frames: one or more dataset folders or COCO JSON files (frames are pooled)",
    )
    p.add_argument(
        "--val", type=Path, help="validation frames, evaluated at the end (and every --val-every steps)"
    )
    p.add_argument(
        "--val-every",
        type=int,
        default=0,
        help="steps between validations on --val, keeping the best in OUT/best.pt (default 0: at the end)",
    )
    p.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, logs)")
    p.add_argument(
        "--arch",
        choices=ARCHITECTURES,
        default="heatmap",
        help="heatmap (ours, default), baseline (2025 grouped ResNet-34), mobilenetv2 (2021 multi-task)",
    )
    p.add_argument("--input-size", type=int, default=256, help="square network input [px] (default: 256)")
    p.add_argument("--steps", type=int, default=3000, help="optimiser steps (default: 3000)")
    p.add_argument("--batch-size", type=int, default=32, help="frames per step (default: 32)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate (default: 3e-3)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay (default: 1e-4)")
    p.add_argument("--warmup", type=int, default=100, help="warm-up steps (default: 100)")
    p.add_argument("--ema", type=float, default=0.998, help="weight EMA decay, 0 = off (default: 0.998)")
    p.add_argument("--sigma", type=float, default=1.0, help="heatmap Gaussian sigma in cells (default: 1.0)")
    p.add_argument("--offset-weight", type=float, default=2.0, help="weight of the offset loss (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="seed: init, order, augmentation (default: 0)")
    p.add_argument("--no-augment", action="store_true", help="train on the frames as they are")
    p.add_argument(
        "--rotate-deg",
        type=float,
        default=AugmentConfig.rotate_deg,
        help=f"[deg] rotation augmentation, uniform in +-this (default {AugmentConfig.rotate_deg:g}; "
        "stages 1-5 of the shipped model: 15)",
    )
    p.add_argument(
        "--scale-range",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=AugmentConfig.scale,
        help="zoom augmentation, log-uniform in [MIN, MAX] (default %(default)s; stages 1-5: 0.85 1.2)",
    )
    p.add_argument(
        "--checkpoint-every", type=int, default=200, help="steps between checkpoints (default 200)"
    )
    p.add_argument(
        "--init",
        type=Path,
        help="start from the weights of this checkpoint (fine-tuning; a heatmap checkpoint may have been "
        "trained at another --input-size)",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--stop-after", type=int, help="stop (with a checkpoint) at this step; --resume goes on")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads per process (default: 2)")
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="training device; auto: CUDA when torch sees a GPU (default: auto)",
    )
    p.add_argument("--no-amp", action="store_true", help="on CUDA, train in float32, not mixed precision")
    p.add_argument("--log-every", type=int, default=10, help="steps between train_log records (default 10)")
    p.add_argument("--workers", type=int, default=0, help="data-loading processes (default: 0 = in-process)")
    return p


def _run_settings(args: argparse.Namespace) -> dict:
    keys = ("arch", "input_size", "steps", "batch_size", "lr", "weight_decay", "warmup", "ema", "sigma")
    keys += ("offset_weight", "seed", "rotate_deg")
    return {k: getattr(args, k) for k in keys} | {
        "augment": not args.no_augment,
        "scale_range": list(args.scale_range),
        "data": ", ".join(str(path) for path in args.data),
        "init": str(args.init) if args.init else "",
    }


def _init_weights(path: Path, config: ModelConfig) -> tuple[dict, dict]:
    """(weights to start from, their provenance) of a checkpoint with the same network configuration.

    The heatmap network is fully convolutional, so its weights do not depend on the input size: a
    checkpoint trained at another size may start a run at this one. The weights are the EMA ones when
    present; the provenance (file, SHA-256 and the checkpoint's own training metadata) goes into the new
    run's metadata, so a fine-tuned model records its whole chain.
    """
    state = load_checkpoint(path)
    start = ModelConfig.from_dict(state["config"])
    if config.arch == "heatmap":
        start = dataclasses.replace(start, input_size=config.input_size)
    if start != config:
        raise SystemExit(f"--init {path} holds another network: {state['config']}")
    provenance = {"path": str(path), "sha256": file_sha256(path), "training": state.get("metadata", {})}
    return state.get("ema") or state["model"], provenance


def _device(requested: str, world: World) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device (a CPU-only torch build, or no GPU)")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", world.local_rank)


def _loss(args: argparse.Namespace, out: dict[str, torch.Tensor], xy, vis, total: Total):
    out = {k: v.float() for k, v in out.items()}  # losses in float32 under mixed precision too
    if args.arch == "heatmap":
        return heatmap_loss(out, xy, vis, sigma=args.sigma, offset_weight=args.offset_weight, total=total)
    if args.arch == "baseline":
        return baseline_loss(out, xy, vis, args.input_size, total=total)
    return multitask_loss(out, xy, vis, args.input_size, total=total)


def _score(overall: dict) -> tuple[float, float]:
    """Order of validation results, larger is better: overall F1, then lower mean error (undefined worst:
    NaN, or None once stored as JSON-safe)."""
    f1, err = overall["f1"], overall["mean_error_px"]
    return (
        -1.0 if f1 is None or math.isnan(f1) else f1,
        -math.inf if err is None or math.isnan(err) else -err,
    )


def train(args: argparse.Namespace) -> dict:
    """Run (or resume) training; returns the final validation metrics (empty without ``--val``)."""
    world = distributed.world_from_env()
    device = _device(args.device, world)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    distributed.init(world, device)
    try:
        return _train(args, world, device)
    finally:
        distributed.shutdown()


def _train(args: argparse.Namespace, world: World, device: torch.device) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    amp = device.type == "cuda" and not args.no_amp
    samples = [sample for path in args.data for sample in load_samples(path)]
    val_samples = load_samples(args.val) if args.val else []
    config = ModelConfig(arch=args.arch, input_size=args.input_size)
    net = build_model(config).to(device, memory_format=torch.channels_last)  # ~1.5x faster convs on CPU
    if world.distributed:  # before the optimiser: the conversion replaces the batch-norm parameters
        net = distributed.global_batch_norm(net, device)
    init_provenance = None
    if args.init:
        weights, init_provenance = _init_weights(args.init, config)
        net.load_state_dict(weights)
    decay, no_decay = [], []
    for name, param in net.named_parameters():
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, args.steps, args.warmup))
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    ema = Ema(net, args.ema) if args.ema > 0 else None
    settings = _run_settings(args)
    last, best_path = args.out / "last.pt", args.out / "best.pt"
    start, best = 0, None
    if last.exists():
        if not args.resume:
            raise SystemExit(f"{last} exists: pass --resume to continue that run, or choose another --out")
        state = load_checkpoint(last)
        if state["metadata"]["settings"] != settings:
            raise SystemExit(f"{last} was trained with other settings: {state['metadata']['settings']}")
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.state = {k: v.to(device) for k, v in state["ema"].items()}
        if amp and state.get("scaler"):  # empty when saved by a float32 run (CPU, or --no-amp)
            scaler.load_state_dict(state["scaler"])
        if "rng" in state:  # absent in checkpoints written before it was recorded
            torch.set_rng_state(state["rng"]["torch"])
            if device.type == "cuda" and "cuda" in state["rng"]:
                torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        best = state.get("best")
        start = int(state["step"])
        LOG.info("resuming %s at step %d", last, start)
    if world.main:
        args.out.mkdir(parents=True, exist_ok=True)
    metadata = {
        "settings": settings,
        "command": "tavi-perception train " + shlex.join(args.argv),
        **_datasets_metadata(args.data),
        "frames": len(samples),
        "parameters": count_parameters(net),
        "runtime": {"device": device.type, "mixed_precision": amp, "processes": world.size},
    }
    if init_provenance is not None:
        metadata["init"] = init_provenance
    model = net
    if world.distributed:
        ids = [device.index] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)

    def payload(step: int) -> dict:
        data = {
            "config": config.to_dict(),
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(),
            "step": step,
            "rng": {"torch": torch.get_rng_state()}
            | ({"cuda": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
            "metadata": metadata | {"step": step},
        }
        if ema is not None:
            data["ema"] = ema.state
        if best is not None:
            data["best"] = best
        return data

    def validation(step: int) -> dict:
        """Validate the deploy weights (rank 0); a new best is written to ``best.pt``."""
        nonlocal best
        weights = build_model(config)
        weights.load_state_dict(ema.state if ema is not None else net.state_dict())
        metrics = validate(weights.eval(), val_samples, args.input_size, device=str(device))
        keys = ("precision", "recall", "f1", "mean_error_px")
        record = json_safe({"step": step, **{k: metrics["overall"][k] for k in keys}})
        if best is None or _score(record) > _score(best):
            best = record
            save_checkpoint(best_path, payload(step) | {"metrics": json_safe(metrics)})
        with (args.out / "val_log.jsonl").open("a") as f:
            f.write(json.dumps(record | {"best_step": best["step"]}) + "\n")
        return metrics

    stop = min(args.steps, args.stop_after or args.steps)
    augment_cfg = AugmentConfig(rotate_deg=args.rotate_deg, scale=tuple(args.scale_range))
    stream = TrainStream(samples, args.input_size, args.seed, None if args.no_augment else augment_cfg)
    try:
        positions = distributed.rank_positions(start, stop, args.batch_size, world)
    except ValueError as err:
        raise SystemExit(str(err)) from err
    loader = DataLoader(  # its own generator: creating the iterator draws no number from torch's RNG
        stream,
        batch_size=args.batch_size // world.size,
        sampler=positions,
        num_workers=args.workers,
        generator=torch.Generator().manual_seed(args.seed),
    )
    total = distributed.global_sum if world.distributed else local
    if world.main:
        print(
            f"training {args.arch} ({metadata['parameters'] / 1e6:.2f} M parameters) on {len(samples)} "
            f"frames, steps {start}..{stop} of {args.steps}, batch {args.batch_size} over {world.size} "
            f"process(es), {device.type}{' mixed precision' if amp else ''}, seed {args.seed}",
            file=sys.stderr,
        )
    model.train()
    log = (args.out / "train_log.jsonl").open("a") if world.main else None
    bar = tqdm(
        total=args.steps,
        initial=start,
        desc=f"train {args.arch}",
        file=sys.stderr,
        smoothing=0.05,
        disable=not world.main,
    )
    t0 = time.monotonic()
    step = start
    metrics: dict = {}
    for images, xy, vis in loader:
        images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        xy, vis = xy.to(device, non_blocking=True), vis.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            out = model(images)
        loss, parts = _loss(args, out, xy, vis, total)
        opt.zero_grad(set_to_none=True)
        # DDP averages gradients over the processes; each process's loss is its share of the global
        # loss (global denominators), so scale by the process count to get the global gradient.
        scaler.scale(loss * world.size).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        step += 1
        if ema is not None:
            ema.update(net, step)
        if step % args.log_every == 0 or step == args.steps:
            shares = torch.tensor([loss.item(), *parts.values()], dtype=torch.float64)
            if world.distributed:  # each process holds its share of the global loss: add them up
                shares = distributed.global_sum(shares.to(device)).cpu()
            values = dict(zip(["loss", *parts], shares.tolist(), strict=True))
            if log is not None:
                rate = (step - start) * args.batch_size / (time.monotonic() - t0)
                record = {"step": step, **values, "lr": sched.get_last_lr()[0], "img_s": rate}
                log.write(json.dumps(record) + "\n")
                log.flush()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item() * world.size:.3f}", lr=f"{sched.get_last_lr()[0]:.1e}")
        periodic = args.val_every and val_samples and step % args.val_every == 0
        if world.main and periodic:
            metrics = validation(step)
        if world.main and step % args.checkpoint_every == 0 and step < args.steps:
            save_checkpoint(last, payload(step))
        if periodic:
            distributed.barrier(world)
    bar.close()
    if log is not None:
        log.close()
    final = val_samples and step == args.steps
    if world.main and final and not (args.val_every and step % args.val_every == 0):
        metrics = validation(step)
    if world.main:
        save_checkpoint(last, payload(step))
        print(f"checkpoint {last} (step {step})", file=sys.stderr)
    distributed.barrier(world)
    if not final or not world.main:
        return {}
    (args.out / "val_metrics.json").write_text(json.dumps(json_safe(metrics), indent=1))
    print(format_table({args.arch: metrics}, title=f"validation on {args.val} ({len(val_samples)} frames)"))
    return metrics


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.val_every < 0:
        print("tavi-perception train: --val-every must be >= 0", file=sys.stderr)
        return 2
    for name in ("steps", "batch_size", "checkpoint_every", "threads", "log_every"):
        if getattr(args, name) < 1:
            print(f"tavi-perception train: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    try:
        train(args)
    except DatasetError as err:
        print(f"tavi-perception train: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # torchrun --nproc_per_node N -m tavi_perception.model.train ...
    sys.exit(main(sys.argv[1:]))
