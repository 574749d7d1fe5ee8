"""Losses of both networks, and the heatmap targets rendered on the fly from keypoint coordinates.

Targets arrive as ``xy_px`` ``(B, 11, 2)`` in network-input pixels (corner origin) and ``visible``
``(B, 11)`` bool; a group is present when any of its members is visible.

Every loss is a sum over the batch divided by a count (frames, points, positives). ``total`` maps the
local count to the count over the whole global batch: the identity in one process, a sum over the
processes in data-parallel training (``model.distributed.global_sum``), so that the processes' losses
add up to exactly the one-process loss of the same global batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional

from tavi_perception.keypoints import KEYPOINT_GROUP, Group
from tavi_perception.model.networks import HEATMAP_STRIDE

Total = Callable[[Tensor], Tensor]


def local(count: Tensor) -> Tensor:
    """The ``total`` of one process: the count itself."""
    return count


def _mean(values: Tensor, total: Total) -> Tensor:
    """Mean over the global batch of the elements of ``values`` (this process's share of it)."""
    return values.sum() / total(values.new_tensor(float(values.numel())))


def group_presence(visible: Tensor) -> Tensor:
    """(B, 3) float: 1 where any member of the group is visible."""
    members = torch.tensor([[KEYPOINT_GROUP[k] == g for k in range(visible.shape[1])] for g in Group])
    return (visible.float() @ members.float().T.to(visible.device)).clamp(max=1.0)


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Element-wise α-balanced focal loss (Lin et al.): ``-α_t (1 - p_t)^γ log(p_t)``."""
    ce = functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * (1 - p_t) ** gamma * ce


def wing_loss(error: Tensor, w: float = 10.0, eps: float = 2.0) -> Tensor:
    """Element-wise Wing loss (Feng et al. 2018): logarithmic below ``w``, linear (continuous) above."""
    a = error.abs()
    c = w - w * math.log1p(w / eps)
    return torch.where(a < w, w * torch.log1p(a / eps), a - c)


def baseline_loss(
    out: dict[str, Tensor], xy_px: Tensor, visible: Tensor, input_size: int, total: Total = local
) -> tuple[Tensor, dict[str, float]]:
    """BCE on group presence + focal loss on point visibility (α 0.25, γ 2) + Wing loss (w 10, ε 2).

    Wing acts on coordinates in network-input pixels, averaged over the coordinates of visible points
    only; BCE and focal are averaged over all groups and points.
    """
    vis = visible.float()
    bce = functional.binary_cross_entropy_with_logits
    group = _mean(bce(out["group_logit"], group_presence(visible), reduction="none"), total)
    focal = _mean(sigmoid_focal_loss(out["point_logit"], vis), total)
    mask = vis.unsqueeze(-1).expand_as(xy_px)
    err = out["xy"] * input_size - xy_px
    wing = (wing_loss(err) * mask).sum() / total(mask.sum()).clamp(min=1.0)
    total = group + focal + wing
    return total, {"group": group.item(), "focal": focal.item(), "wing": wing.item()}


def log_cosh(error: Tensor) -> Tensor:
    """Element-wise log(cosh(x)), written to stay finite for large |x|: |x| + log1p(exp(-2|x|)) - log 2."""
    a = error.abs()
    return a + torch.log1p(torch.exp(-2.0 * a)) - math.log(2.0)


def multitask_loss(
    out: dict[str, Tensor], xy_px: Tensor, visible: Tensor, input_size: int, total: Total = local
) -> tuple[Tensor, dict[str, float]]:
    """The 2021 multi-task loss: BCE on the 11 presence labels + log-cosh on the 22 coordinates.

    Log-cosh acts on coordinates in percent of the input side (the unit the 2021 design reports its
    error in), so it is quadratic below about 1 % and linear above; averaged over the coordinates of
    visible points only, BCE over all points.
    """
    vis = visible.float()
    bce = functional.binary_cross_entropy_with_logits(out["point_logit"], vis, reduction="none")
    presence = _mean(bce, total)
    mask = vis.unsqueeze(-1).expand_as(xy_px)
    err_pct = 100.0 * (out["xy"] - xy_px / input_size)
    coords = (log_cosh(err_pct) * mask).sum() / total(mask.sum()).clamp(min=1.0)
    return presence + coords, {"presence": presence.item(), "log_cosh": coords.item()}


def render_heatmap_targets(
    xy_px: Tensor, visible: Tensor, grid: tuple[int, int], stride: int = HEATMAP_STRIDE, sigma: float = 1.0
) -> tuple[Tensor, Tensor, Tensor]:
    """Gaussian heatmaps, sub-cell offset targets and the offset mask for the heatmap grid.

    The point falls in cell ``floor(xy / stride)``, whose target is exactly 1 (the focal loss's positive);
    the other cells get a Gaussian of ``sigma`` cells around the point. Offsets (point minus cell centre,
    in cells) are supervised on the 3x3 cells around the point's cell, so a peak found one cell off
    still decodes to the right place. Returns heatmap ``(B, K, H, W)``, offsets ``(B, K, 2, H, W)`` and
    mask ``(B, K, H, W)``.
    """
    h, w = grid
    c = xy_px / stride  # (B, K, 2) in cells
    gx = torch.arange(w, dtype=c.dtype, device=c.device) + 0.5
    gy = torch.arange(h, dtype=c.dtype, device=c.device) + 0.5
    dx = c[..., 0, None, None] - gx[None, None, None, :]  # (B, K, 1, W)
    dy = c[..., 1, None, None] - gy[None, None, :, None]  # (B, K, H, 1)
    vis = visible[..., None, None]
    heat = torch.exp(-(dx**2 + dy**2) / (2 * sigma**2))
    cell_x = c[..., 0].floor().clamp(0, w - 1)
    cell_y = c[..., 1].floor().clamp(0, h - 1)
    is_cell_x = (gx - 0.5)[None, None, None, :] == cell_x[..., None, None]
    is_cell_y = (gy - 0.5)[None, None, :, None] == cell_y[..., None, None]
    heat = torch.where(is_cell_x & is_cell_y, torch.ones_like(heat), heat) * vis
    near_x = ((gx - 0.5)[None, None, None, :] - cell_x[..., None, None]).abs() <= 1
    near_y = ((gy - 0.5)[None, None, :, None] - cell_y[..., None, None]).abs() <= 1
    mask = (near_x & near_y & vis).to(c.dtype)
    offsets = torch.stack(torch.broadcast_tensors(dx, dy), dim=2)
    return heat, offsets, mask


def heatmap_focal_loss(
    logits: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0, total: Total = local
) -> Tensor:
    """Penalty-reduced pixel-wise focal loss (CenterNet) summed over cells, divided by the positives."""
    pos = target >= 1.0
    log_p = functional.logsigmoid(logits)
    log_not_p = functional.logsigmoid(-logits)
    p = torch.sigmoid(logits)
    pos_term = torch.where(pos, (1 - p) ** alpha * log_p, torch.zeros_like(p))
    neg_term = torch.where(pos, torch.zeros_like(p), (1 - target) ** beta * p**alpha * log_not_p)
    return -(pos_term.sum() + neg_term.sum()) / total(pos.sum().to(logits.dtype)).clamp(min=1)


def heatmap_loss(
    out: dict[str, Tensor],
    xy_px: Tensor,
    visible: Tensor,
    sigma: float = 1.0,
    offset_weight: float = 1.0,
    group_weight: float = 0.5,
    total: Total = local,
) -> tuple[Tensor, dict[str, float]]:
    """Heatmap focal loss + L1 on sub-cell offsets (3x3 cells around each visible point) + BCE on point
    visibility + BCE on group presence (both averaged)."""
    logits = out["heatmap"]
    heat, offsets, mask = render_heatmap_targets(xy_px, visible, tuple(logits.shape[-2:]), sigma=sigma)
    focal = heatmap_focal_loss(logits, heat, total=total)
    l1 = (out["offset"] - offsets).abs() * mask.unsqueeze(2)
    offset = l1.sum() / total(2 * mask.sum()).clamp(min=1.0)
    bce = functional.binary_cross_entropy_with_logits
    point = _mean(bce(out["point_logit"], visible.float(), reduction="none"), total)
    group = _mean(bce(out["group_logit"], group_presence(visible), reduction="none"), total)
    total = focal + offset_weight * offset + point + group_weight * group
    parts = {
        "heatmap": focal.item(),
        "offset": offset.item(),
        "visibility": point.item(),
        "group": group.item(),
    }
    return total, parts
