"""Losses against hand-computed values, heatmap targets and their decoding."""

from __future__ import annotations

import math

import pytest
import torch

from tavi_perception.keypoints import NUM_KEYPOINTS, Kp
from tavi_perception.model.losses import (
    baseline_loss,
    group_presence,
    heatmap_focal_loss,
    heatmap_loss,
    render_heatmap_targets,
    sigmoid_focal_loss,
    wing_loss,
)
from tavi_perception.model.networks import HeatmapNet


def test_wing_loss_is_logarithmic_below_w_and_linear_above():
    got = wing_loss(torch.tensor([1.0, -1.0, 12.0, 10.0, 0.0]))
    # w ln(1 + |x|/eps) below w = 10; |x| - (w - w ln(1 + w/eps)) above; continuous at w.
    want = [10 * math.log(1.5), 10 * math.log(1.5), 12 - (10 - 10 * math.log(6)), 10 * math.log(6), 0.0]
    assert got.tolist() == pytest.approx(want, rel=1e-6)


def test_sigmoid_focal_loss_matches_hand_values():
    got = sigmoid_focal_loss(torch.tensor([0.0, 0.0, math.log(3.0)]), torch.tensor([1.0, 0.0, 1.0]))
    # p = 0.5 positive: 0.25 * 0.5^2 * ln 2; negative: 0.75 * 0.5^2 * ln 2;
    # p = 0.75 positive: 0.25 * 0.25^2 * -ln 0.75
    want = [0.25 * 0.25 * math.log(2), 0.75 * 0.25 * math.log(2), 0.25 * 0.0625 * -math.log(0.75)]
    assert got.tolist() == pytest.approx(want, rel=1e-6)


def test_baseline_loss_sums_group_bce_point_focal_and_masked_wing():
    xy_px = torch.zeros(1, NUM_KEYPOINTS, 2)
    xy_px[0, Kp.AA1] = torch.tensor([50.0, 50.0])
    visible = torch.zeros(1, NUM_KEYPOINTS, dtype=torch.bool)
    visible[0, Kp.AA1] = True
    pred_xy = torch.full((1, NUM_KEYPOINTS, 2), 7.0)  # invisible points far off: must not count
    pred_xy[0, Kp.AA1] = torch.tensor([0.51, 0.62])  # (51, 62) px at input size 100: errors 1 and 12 px
    out = {"group_logit": torch.zeros(1, 3), "point_logit": torch.zeros(1, NUM_KEYPOINTS), "xy": pred_xy}
    total, parts = baseline_loss(out, xy_px, visible, input_size=100)
    group = math.log(2)
    focal = (0.25 * 0.25 * math.log(2) + 10 * 0.75 * 0.25 * math.log(2)) / 11
    wing = (10 * math.log(1.5) + 12 - (10 - 10 * math.log(6))) / 2
    assert parts["group"] == pytest.approx(group, rel=1e-6)
    assert parts["focal"] == pytest.approx(focal, rel=1e-6)
    assert parts["wing"] == pytest.approx(wing, rel=1e-6)
    assert total.item() == pytest.approx(group + focal + wing, rel=1e-6)


def test_group_presence_is_any_member_visible():
    visible = torch.zeros(2, NUM_KEYPOINTS, dtype=torch.bool)
    visible[0, Kp.STJ2] = True
    visible[1, Kp.CT] = visible[1, Kp.CP] = visible[1, Kp.FE1] = True
    assert group_presence(visible).tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]


def test_heatmap_focal_loss_matches_hand_values():
    logits = torch.zeros(1, 1, 1, 2)
    target = torch.tensor([[[[1.0, 0.5]]]])
    # positive cell: -(1 - 0.5)^2 ln 0.5; negative cell: -(1 - 0.5)^4 0.5^2 ln 0.5; one positive
    want = 0.25 * math.log(2) + 0.0625 * 0.25 * math.log(2)
    assert heatmap_focal_loss(logits, target).item() == pytest.approx(want, rel=1e-6)


def test_heatmap_targets_peak_offsets_and_mask():
    xy = torch.zeros(1, NUM_KEYPOINTS, 2)
    # stride 4: cell coordinates (2.5, 1.5), the centre of the cell at column 2, row 1
    xy[0, 0] = torch.tensor([10.0, 6.0])
    visible = torch.zeros(1, NUM_KEYPOINTS, dtype=torch.bool)
    visible[0, 0] = True
    heat, offsets, mask = render_heatmap_targets(xy, visible, (8, 8), stride=4, sigma=1.0)
    assert heat[0, 0, 1, 2] == 1.0 and int((heat[0, 0] == 1.0).sum()) == 1
    assert heat[0, 0, 1, 3].item() == pytest.approx(math.exp(-0.5))
    assert offsets[0, 0, :, 1, 2].tolist() == [0.0, 0.0]
    assert offsets[0, 0, :, 1, 3].tolist() == [-1.0, 0.0]
    assert offsets[0, 0, :, 0, 2].tolist() == [0.0, 1.0]
    assert int(mask[0, 0].sum()) == 9 and mask[0, 0, 0:3, 1:4].all()
    assert not heat[0, 1:].any() and not mask[0, 1:].any()


def test_decoding_rendered_targets_recovers_the_points():
    gen = torch.Generator().manual_seed(3)
    xy = torch.rand(2, NUM_KEYPOINTS, 2, generator=gen) * 31.0
    visible = torch.ones(2, NUM_KEYPOINTS, dtype=torch.bool)
    heat, offsets, _ = render_heatmap_targets(xy, visible, (8, 8), stride=4)
    logits = torch.logit(heat.clamp(1e-4, 1 - 1e-4))
    point_logit = torch.linspace(-3, 3, NUM_KEYPOINTS).expand(2, -1)
    out = {"heatmap": logits, "offset": offsets, "point_logit": point_logit, "group_logit": torch.zeros(2, 3)}
    xy_norm, vis, group = HeatmapNet.decode(out)
    assert torch.allclose(xy_norm * 32.0, xy, atol=1e-4)
    assert torch.allclose(vis, torch.sigmoid(point_logit))
    assert torch.allclose(group, torch.full((2, 3), 0.5))


def _one_point_outputs(logits: torch.Tensor, offsets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Raw heatmap-net outputs whose first keypoint has the given logit and offset maps."""
    h, w = logits.shape
    heatmap = torch.full((1, NUM_KEYPOINTS, h, w), -20.0)
    offset = torch.zeros(1, NUM_KEYPOINTS, 2, h, w)
    heatmap[0, 0], offset[0, 0] = logits, offsets
    return {
        "heatmap": heatmap,
        "offset": offset,
        "point_logit": torch.zeros(1, NUM_KEYPOINTS),
        "group_logit": torch.zeros(1, 3),
    }


def test_decoding_averages_the_votes_of_the_peak_and_its_neighbours_by_probability():
    logits = torch.full((8, 8), -20.0)
    offsets = torch.zeros(2, 8, 8)
    logits[3, 4] = 2.0  # the peak: votes for its cell centre (4.5, 3.5)
    logits[3, 5] = 0.0  # right neighbour, probability 0.5, votes for (5.5 - 0.5, 3.5 + 1.0) = (5.0, 4.5)
    offsets[:, 3, 5] = torch.tensor([-0.5, 1.0])
    logits[0, 0] = 1.9  # far from the peak: no vote
    xy_norm, _, _ = HeatmapNet.decode(_one_point_outputs(logits, offsets))
    p, q = torch.sigmoid(torch.tensor(2.0)).item(), 0.5
    want_x = (p * 4.5 + q * 5.0) / (p + q)
    want_y = (p * 3.5 + q * 4.5) / (p + q)
    assert xy_norm[0, 0].tolist() == pytest.approx([want_x / 8, want_y / 8], abs=1e-4)


def test_decoding_at_the_grid_corner_gives_no_weight_to_cells_beyond_the_border():
    logits = torch.full((8, 8), -20.0)
    logits[0, 0] = 3.0
    offsets = torch.full((2, 8, 8), 0.25)
    xy_norm, _, _ = HeatmapNet.decode(_one_point_outputs(logits, offsets))
    assert xy_norm[0, 0].tolist() == pytest.approx([0.75 / 8, 0.75 / 8], abs=1e-4)


def test_heatmap_loss_weights_its_parts():
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(2, NUM_KEYPOINTS, 2, generator=gen) * 31.0
    visible = torch.rand(2, NUM_KEYPOINTS, generator=gen) < 0.5
    out = {
        "heatmap": torch.randn(2, NUM_KEYPOINTS, 8, 8, generator=gen),
        "offset": torch.randn(2, NUM_KEYPOINTS, 2, 8, 8, generator=gen),
        "point_logit": torch.zeros(2, NUM_KEYPOINTS),
        "group_logit": torch.zeros(2, 3),
    }
    total, parts = heatmap_loss(out, xy, visible, offset_weight=2.0, group_weight=0.5)
    assert parts["visibility"] == pytest.approx(math.log(2)) and parts["group"] == pytest.approx(math.log(2))
    want = parts["heatmap"] + 2.0 * parts["offset"] + parts["visibility"] + 0.5 * parts["group"]
    assert total.item() == pytest.approx(want, rel=1e-6)
