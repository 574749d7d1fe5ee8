"""Data-parallel training across processes started by torch's launcher (``torchrun``).

``torchrun --nproc_per_node N -m tavi_perception.cli train ...`` (or several machines with
``--nnodes``/``--rdzv-endpoint``) starts N copies of the training command with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous in the environment. Each process takes its own contiguous slice of
every global batch (:func:`rank_positions`); gradients are averaged by ``DistributedDataParallel``;
batch normalisation uses the statistics of the whole global batch; and the losses divide by counts
summed over the processes (:func:`global_sum`, ``model.losses``). Together these make one optimiser
step of N processes the same step as one process on the same global batch, up to floating-point
summation order. Backend: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """The process that writes checkpoints, logs and validates."""
        return self.rank == 0


def world_from_env() -> World:
    """The world ``torchrun`` describes in the environment; a plain run is rank 0 of 1."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def init(world: World, device: torch.device) -> None:
    """Join the process group (NCCL for CUDA devices, gloo otherwise)."""
    if world.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


class _GlobalSum(torch.autograd.Function):
    """y = sum of x over the processes. Every process's loss may depend on y, so the gradient of x is
    the sum of the processes' gradients of y: the backward pass is the same all-reduce."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = x.clone()
        dist.all_reduce(y, op=dist.ReduceOp.SUM)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def global_sum(value: Tensor) -> Tensor:
    """Sum over the processes, differentiable; the value itself in one process."""
    return _GlobalSum.apply(value) if dist.is_initialized() else value


def rank_positions(start_step: int, stop_step: int, batch_size: int, world: World) -> list[int]:
    """Stream positions this process trains on: its ``batch_size / size`` slice of each global batch.

    Global batch ``s`` is positions ``s * batch_size ... (s + 1) * batch_size - 1``, the same as one
    process sees, so the run is the same whatever the number of processes.
    """
    if batch_size % world.size:
        raise ValueError(f"--batch-size {batch_size} is not divisible by the {world.size} processes")
    share = batch_size // world.size
    first = world.rank * share
    return [s * batch_size + first + i for s in range(start_step, stop_step) for i in range(share)]


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """Batch normalisation over the global batch on any device (torch's ``SyncBatchNorm`` is CUDA-only).

    In training the per-channel sums of x and x² and the element count are summed over the processes
    (differentiably), giving the global batch's mean and biased variance; the running statistics are
    updated with the unbiased variance, as ``BatchNorm2d`` does. Outside training, or in one process,
    it is ``BatchNorm2d``. Same parameters and buffers, so checkpoints load into either.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized()):
            return super().forward(x)
        xf = x.float()
        count = xf.new_tensor([float(xf.numel() // xf.shape[1])])
        stats = global_sum(torch.cat((xf.sum(dim=(0, 2, 3)), (xf * xf).sum(dim=(0, 2, 3)), count)))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp(min=0.0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp(min=1.0), alpha=m)
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            shift = self.bias - mean * scale * self.weight
            scale = scale * self.weight
        else:
            shift = -mean * scale
        return (xf * scale[None, :, None, None] + shift[None, :, None, None]).to(x.dtype)


def global_batch_norm(net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` with every ``BatchNorm2d`` normalising over the global batch: torch's ``SyncBatchNorm``
    on CUDA, :class:`GlobalBatchNorm2d` elsewhere. Weights and running statistics are kept."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(net)
    for name, child in net.named_children():
        if type(child) is nn.BatchNorm2d:
            bn = GlobalBatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            bn.load_state_dict(child.state_dict())
            setattr(net, name, bn.to(device))
        else:
            global_batch_norm(child, device)
    return net
