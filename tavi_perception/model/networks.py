"""Keypoint networks in plain torch: our light stride-4 heatmap net and the two published designs.

``baseline`` is the 2025 grouped multi-task ResNet-34 (group presence, per-point visibility, direct
coordinate regression trained with Wing loss); ``mobilenetv2`` the 2021 multi-task MobileNetV2 regressor
(11 presence labels, 22 coordinates). Both published designs are written here from their descriptions,
without pretrained weights (docs/comparison.md). Every network takes a ``(B, 1, S, S)`` standardised
image (see ``inference.processing``) and returns a dict of raw training outputs from ``forward``.
``decode`` turns those into one deploy form shared by every architecture: normalised coordinates
``(B, 11, 2)`` (0..1 of the input width/height, corner origin), point visibility ``(B, 11)`` and group
probability ``(B, 3)``. :class:`DeployModel` wraps a network so that this decoding is part of the
exported ONNX graph and the engines need no per-architecture code.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from tavi_perception.keypoints import FLIP_PERMUTATION, GROUP_MEMBERS, KEYPOINT_GROUP, NUM_KEYPOINTS, Group

ARCHITECTURES = ("heatmap", "baseline", "mobilenetv2")
HEATMAP_STRIDE = 4
DECODE_RADIUS = 1  # [cells] neighbours of the heatmap peak whose position votes are averaged


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network; stored in checkpoints and in the ONNX metadata."""

    arch: str = "heatmap"
    input_size: int = 256  # [px] square network input
    widths: tuple[int, ...] = (24, 48, 96, 160, 256)  # heatmap net: channels at strides 2, 4, 8, 16, 32
    decoder_channels: int = 64  # heatmap net: channels of the top-down path at strides 8-32
    head_channels: int = 32  # heatmap net: channels at stride 4 (heatmap resolution)

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if self.input_size % 32 or self.input_size < 64:
            raise ValueError(f"input_size must be a multiple of 32 and >= 64, got {self.input_size}")
        if len(self.widths) != 5:
            raise ValueError("widths needs 5 entries (strides 2, 4, 8, 16, 32)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "widths" in known:
            known["widths"] = tuple(int(w) for w in known["widths"])
        return cls(**known)


def _conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)
    )


class SeparableBlock(nn.Module):
    """Depthwise 3x3 (maybe strided) then pointwise 1x1, each batch-normed; residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = _conv_bn(cin, cin, 3, stride, groups=cin)
        self.pointwise = _conv_bn(cin, cout)
        self.residual = stride == 1 and cin == cout
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.pointwise(self.act(self.depthwise(x)))
        return self.act(y + x if self.residual else y)


class HeatmapNet(nn.Module):
    """Stride-4 heatmap network: depthwise-separable encoder to stride 32, top-down decoder to stride 4.

    Per keypoint one heatmap logit map and a 2-channel sub-cell offset map (in heatmap cells); the peak
    cell and its neighbours, each plus its offset, give the position (see ``decode``). Visibility comes
    from one small head per group, fed with the globally pooled stride-32 features and the (detached)
    peak logits of the group's members: it gives the group presence logit and the members' visibility
    logits, so detection does not hinge on the height of a heatmap peak. The stride-4 level, where most
    of the latency goes, runs with fewer channels (``head_channels``) than the coarser decoder levels.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        w2, w4, w8, w16, w32 = config.widths
        d, h = config.decoder_channels, config.head_channels
        self.stem = nn.Sequential(_conv_bn(1, w2, 3, 2), nn.ReLU(inplace=True))
        self.stage4 = nn.Sequential(SeparableBlock(w2, w4, 2), SeparableBlock(w4, w4))
        self.stage8 = nn.Sequential(SeparableBlock(w4, w8, 2), SeparableBlock(w8, w8))
        self.stage16 = nn.Sequential(
            SeparableBlock(w8, w16, 2), SeparableBlock(w16, w16), SeparableBlock(w16, w16)
        )
        self.stage32 = nn.Sequential(SeparableBlock(w16, w32, 2), SeparableBlock(w32, w32))
        self.lateral32 = _conv_bn(w32, d)
        self.lateral16 = _conv_bn(w16, d)
        self.lateral8 = _conv_bn(w8, d)
        self.lateral4 = _conv_bn(w4, h)
        self.smooth16 = SeparableBlock(d, d)
        self.smooth8 = SeparableBlock(d, d)
        self.reduce8 = _conv_bn(d, h)
        self.smooth4 = SeparableBlock(h, h)
        self.head = SeparableBlock(h, h)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.out = nn.Conv2d(h, 3 * NUM_KEYPOINTS, 1)  # 11 heatmap logits, then 11 (dx, dy) offsets
        self.members = [[int(k) for k in GROUP_MEMBERS[g]] for g in Group]
        self.visibility = nn.ModuleList([nn.Linear(w32 + len(m), 1 + len(m)) for m in self.members])
        order = [k for m in self.members for k in m]
        self.register_buffer("schema_order", torch.tensor([order.index(k) for k in range(NUM_KEYPOINTS)]))
        # Start with a low peak probability everywhere (as CenterNet does) so early focal-loss gradients
        # are not swamped by the many background cells; start the offsets at the cell centres.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        nn.init.normal_(self.out.weight[:NUM_KEYPOINTS], std=0.01)
        nn.init.constant_(self.out.bias[:NUM_KEYPOINTS], -math.log((1 - 0.05) / 0.05))
        with torch.no_grad():  # point visibility starts as the heatmap peak's own logit
            for head, members in zip(self.visibility, self.members, strict=True):
                head.weight[1:, w32:] = torch.eye(len(members))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        c4 = self.stage4(self.stem(x))
        c8 = self.stage8(c4)
        c16 = self.stage16(c8)
        c32 = self.stage32(c16)
        p = self.smooth16(self.up(self.lateral32(c32)) + self.lateral16(c16))
        p = self.smooth8(self.up(p) + self.lateral8(c8))
        p = self.smooth4(self.up(self.reduce8(p)) + self.lateral4(c4))
        o = self.out(self.head(p))
        b, _, hh, ww = o.shape
        heatmap = o[:, :NUM_KEYPOINTS]
        pooled = c32.mean(dim=(2, 3))
        peak = heatmap.flatten(2).amax(dim=2).detach()
        groups, points = [], []
        for head, members in zip(self.visibility, self.members, strict=True):
            v = head(torch.cat((pooled, peak[:, members]), dim=1))
            groups.append(v[:, :1])
            points.append(v[:, 1:])
        return {
            "heatmap": heatmap,
            "offset": o[:, NUM_KEYPOINTS:].reshape(b, NUM_KEYPOINTS, 2, hh, ww),
            "point_logit": torch.cat(points, dim=1)[:, self.schema_order],
            "group_logit": torch.cat(groups, dim=1),
        }

    @staticmethod
    def unmirror(out: dict[str, Tensor], flip_order: Tensor) -> dict[str, Tensor]:
        """Raw outputs for a horizontally mirrored image, brought back to the unmirrored image.

        Maps are flipped back along x and their keypoints re-labelled (``flip_order``, the side swap); a
        cell's sub-cell x offset changes sign, since cell c of the mirror is cell w - 1 - c.
        """
        offset = torch.flip(out["offset"], dims=(4,))[:, flip_order]
        return {
            "heatmap": torch.flip(out["heatmap"], dims=(3,))[:, flip_order],
            "offset": torch.cat((-offset[:, :, :1], offset[:, :, 1:]), dim=2),
            "point_logit": out["point_logit"][:, flip_order],
            "group_logit": out["group_logit"],
        }

    @staticmethod
    def decode(out: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Per keypoint, the peak-probability-weighted mean of the positions (cell centre plus offset)
        voted by the peak cell and its neighbours within ``DECODE_RADIUS`` cells.

        The offsets are trained on the 3x3 cells around each point, so each of those cells votes for the
        point; averaging the votes instead of reading the peak cell alone lowered the mean error on the
        validation frames (3.23 -> 3.11 px at 512²). Cells beyond the grid border get no weight.
        """
        heatmap, offset = out["heatmap"], out["offset"]
        b, k, h, w = heatmap.shape
        idx = heatmap.flatten(2).argmax(dim=2)  # (B, K)
        steps = torch.arange(-DECODE_RADIUS, DECODE_RADIUS + 1, device=heatmap.device)
        rows = torch.div(idx, w, rounding_mode="floor")[..., None, None] + steps[:, None]  # (B, K, n, 1)
        cols = torch.remainder(idx, w)[..., None, None] + steps[None, :]  # (B, K, 1, n)
        rows, cols = torch.broadcast_tensors(rows, cols)
        inside = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).flatten(2).to(heatmap.dtype)
        rows, cols = rows.clamp(0, h - 1).flatten(2), cols.clamp(0, w - 1).flatten(2)  # (B, K, n²)
        cells = rows * w + cols
        weight = torch.sigmoid(heatmap.flatten(2).gather(2, cells)) * inside
        sub = offset.flatten(3).gather(3, cells.unsqueeze(2).expand(b, k, 2, cells.shape[2]))
        x = ((cols.to(heatmap.dtype) + 0.5 + sub[:, :, 0]) * weight).sum(2) / (weight.sum(2) * w)
        y = ((rows.to(heatmap.dtype) + 0.5 + sub[:, :, 1]) * weight).sum(2) / (weight.sum(2) * h)
        xy = torch.stack((x, y), dim=-1)
        return xy, torch.sigmoid(out["point_logit"]), torch.sigmoid(out["group_logit"])


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convolutions) with a projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, 3, stride)
        self.conv2 = _conv_bn(cout, cout, 3)
        self.shortcut = _conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv2(self.act(self.conv1(x))) + self.shortcut(x))


class BaselineNet(nn.Module):
    """The 2025 grouped baseline: ResNet-34, global average pooling, one head per group.

    Each group head gives the group presence logit, a visibility logit per member point and the
    members' (x, y) by direct regression (normalised to the input size).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv_bn(1, 64, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        layers: list[nn.Module] = []
        cin = 64
        for cout, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(blocks):
                layers.append(BasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.body = nn.Sequential(*layers)
        self.members = [tuple(int(k) for k in GROUP_MEMBERS[g]) for g in Group]
        self.heads = nn.ModuleList([nn.Linear(512, 1 + 3 * len(m)) for m in self.members])
        order = [k for m in self.members for k in m]
        # Heads emit points group by group; this permutation restores schema order.
        self.register_buffer("schema_order", torch.tensor([order.index(k) for k in range(NUM_KEYPOINTS)]))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        feat = self.body(self.stem(x)).mean(dim=(2, 3))
        groups, logits, coords = [], [], []
        for head, members in zip(self.heads, self.members, strict=True):
            o = head(feat)
            n = len(members)
            groups.append(o[:, :1])
            logits.append(o[:, 1 : 1 + n])
            coords.append(o[:, 1 + n :].reshape(-1, n, 2))
        order = self.schema_order
        return {
            "group_logit": torch.cat(groups, dim=1),
            "point_logit": torch.cat(logits, dim=1)[:, order],
            "xy": torch.cat(coords, dim=1)[:, order],
        }

    @staticmethod
    def unmirror(out: dict[str, Tensor], flip_order: Tensor) -> dict[str, Tensor]:
        """Raw outputs for a horizontally mirrored image, brought back to the unmirrored image."""
        xy = out["xy"][:, flip_order]
        return {
            "group_logit": out["group_logit"],
            "point_logit": out["point_logit"][:, flip_order],
            "xy": torch.cat((1.0 - xy[..., :1], xy[..., 1:]), dim=-1),
        }

    @staticmethod
    def decode(out: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        return out["xy"], torch.sigmoid(out["point_logit"]), torch.sigmoid(out["group_logit"])


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion, depthwise 3x3 (maybe strided), linear 1x1 projection; ReLU6
    after the first two; residual when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [_conv_bn(cin, hidden), nn.ReLU6(inplace=True)]
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(inplace=True)]
        layers.append(_conv_bn(hidden, cout))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x) if self.residual else self.block(x)


# MobileNetV2 (width 1.0): (expansion t, channels c, repeats n, first stride s) per stage.
MOBILENETV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
MOBILENETV2_STAGES += ((6, 160, 3, 2), (6, 320, 1, 1))


class MultiTaskMobileNet(nn.Module):
    """The 2021 multi-task regressor: MobileNetV2 backbone, global average pooling, two heads.

    One head gives 11 presence logits (one label per keypoint, BCE), the other 22 numbers, the 11 (x, y)
    normalised to the input (log-cosh regression). The design has no groups: the deploy form's group
    probability is the largest presence probability of the group's members.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(1, 32, 3, 2), nn.ReLU6(inplace=True)]
        cin = 32
        for t, c, n, s in MOBILENETV2_STAGES:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += [_conv_bn(cin, 1280), nn.ReLU6(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.presence = nn.Linear(1280, NUM_KEYPOINTS)
        self.coords = nn.Linear(1280, 2 * NUM_KEYPOINTS)
        members = [[KEYPOINT_GROUP[k] == g for k in range(NUM_KEYPOINTS)] for g in Group]
        self.register_buffer("group_members", torch.tensor(members), persistent=False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        feat = self.body(x).mean(dim=(2, 3))
        return {"point_logit": self.presence(feat), "xy": self.coords(feat).reshape(-1, NUM_KEYPOINTS, 2)}

    @staticmethod
    def unmirror(out: dict[str, Tensor], flip_order: Tensor) -> dict[str, Tensor]:
        """Raw outputs for a horizontally mirrored image, brought back to the unmirrored image."""
        xy = out["xy"][:, flip_order]
        return {
            "point_logit": out["point_logit"][:, flip_order],
            "xy": torch.cat((1.0 - xy[..., :1], xy[..., 1:]), dim=-1),
        }

    def decode(self, out: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        vis = torch.sigmoid(out["point_logit"])
        group = torch.where(self.group_members[None], vis[:, None, :], torch.zeros_like(vis)[:, None, :])
        return out["xy"], vis, group.amax(dim=2)


Network = HeatmapNet | BaselineNet | MultiTaskMobileNet


def build_model(config: ModelConfig) -> Network:
    """A freshly initialised network for ``config``."""
    nets = {"heatmap": HeatmapNet, "baseline": BaselineNet, "mobilenetv2": MultiTaskMobileNet}
    return nets[config.arch](config)


class DeployModel(nn.Module):
    """A network plus its decoding: image ``(B, 1, S, S)`` -> (xy_norm, visibility, group_probability).

    With ``flip_test`` the network also sees the horizontally mirrored image (one batch of 2B) and the
    two raw outputs are averaged before decoding: heatmap logits and offsets for the heatmap net (the
    usual flip test of heatmap keypoint detectors), coordinates and logits for the regressors. Twice the
    network work; the output is mirror-consistent by construction.
    """

    def __init__(self, net: Network, flip_test: bool = False) -> None:
        super().__init__()
        self.net = net
        self.flip_test = flip_test
        self.register_buffer("flip_order", torch.tensor(FLIP_PERMUTATION), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if not self.flip_test:
            return self.net.decode(self.net(x))
        b = x.shape[0]
        out = self.net(torch.cat((x, torch.flip(x, dims=(3,)))))
        mirrored = self.net.unmirror({k: v[b:] for k, v in out.items()}, self.flip_order)
        return self.net.decode({k: 0.5 * (v[:b] + mirrored[k]) for k, v in out.items()})


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
