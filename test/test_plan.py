"""The preoperative plan: annulus plane, S-curve, named views, the CLI, the plan against the simulators."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from tavi_perception.core.carm import view_axes
from tavi_perception.plan.annulus import plan_from_labels, plan_from_nadirs, read_plan
from tavi_perception.plan.cli import main as plan_main
from tavi_perception.plan.simulated import case_plan
from tavi_perception.plan.views import (
    CArmRange,
    angles_of_beam,
    nearest_in_range,
    plan_views,
    s_curve,
)
from tavi_perception.sim.carm import Projector
from tavi_perception.sim.ct.simulator import simulation_case
from tavi_perception.sim.ct.volume import LABEL_FILE, data_path
from tavi_perception.sim.phantom import RootGeometry


def _ring_nadirs(centre: np.ndarray, normal: np.ndarray, radius: float) -> dict[str, np.ndarray]:
    normal = normal / np.linalg.norm(normal)
    e1 = np.cross(normal, [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    angles = {"rcc": 0.0, "lcc": 2.0 * math.pi / 3.0, "ncc": -2.0 * math.pi / 3.0}
    return {c: centre + radius * (math.cos(a) * e1 + math.sin(a) * e2) for c, a in angles.items()}


def test_plane_through_three_nadirs_recovers_centre_normal_and_radius() -> None:
    centre, normal = np.array([10.0, -20.0, -150.0]), np.array([-0.6, -0.3, 0.74])
    plan = plan_from_nadirs(_ring_nadirs(centre, normal, 12.0))
    np.testing.assert_allclose(plan.centre_lps_mm, centre, atol=1e-9)
    np.testing.assert_allclose(plan.normal_lps, normal / np.linalg.norm(normal), atol=1e-12)
    assert plan.radius_mm == pytest.approx(12.0)


def test_plan_normal_points_towards_the_head_whatever_the_nadir_order() -> None:
    nadirs = _ring_nadirs(np.zeros(3), np.array([0.2, 0.1, 0.9]), 11.0)
    swapped = {"ncc": nadirs["lcc"], "lcc": nadirs["ncc"], "rcc": nadirs["rcc"]}
    assert plan_from_nadirs(nadirs).normal_lps[2] > 0 and plan_from_nadirs(swapped).normal_lps[2] > 0


def test_collinear_or_missing_nadirs_are_refused() -> None:
    with pytest.raises(ValueError, match="collinear"):
        plan_from_nadirs({"ncc": np.zeros(3), "lcc": np.ones(3), "rcc": 2.0 * np.ones(3)})
    with pytest.raises(ValueError, match="rcc"):
        plan_from_nadirs({"ncc": np.zeros(3), "lcc": np.ones(3)})


def test_every_s_curve_view_sees_the_annulus_plane_edge_on() -> None:
    normal = np.array([-0.62, -0.30, 0.73])
    normal /= np.linalg.norm(normal)
    alphas = np.arange(-90.0, 91.0, 5.0)
    for a, b in zip(alphas, s_curve(normal, alphas), strict=True):
        beam, _, _ = view_axes(a, b)
        assert abs(float(beam @ normal)) < 1e-12
        # the formula: tan b = (n_y cos a - n_x sin a) / n_z
        ra = math.radians(a)
        expected = math.degrees(math.atan((normal[1] * math.cos(ra) - normal[0] * math.sin(ra)) / normal[2]))
        assert b == pytest.approx(expected)


def test_angles_of_beam_give_back_the_beam_with_the_detector_in_front() -> None:
    for a, b in ((20.0, -10.0), (-35.0, 25.0), (0.0, 0.0)):
        beam, _, _ = view_axes(a, b)
        for sign in (1.0, -1.0):
            assert angles_of_beam(sign * beam) == pytest.approx((a, b))


def test_cusp_overlap_view_overlaps_the_coronary_cusps_and_three_cusp_view_centres_the_rcc() -> None:
    plan = plan_from_nadirs(_ring_nadirs(np.zeros(3), np.array([-0.6, -0.3, 0.74]), 12.0))
    views = plan_views(plan)

    def image(view) -> dict[str, np.ndarray]:  # parallel projection onto the image plane [mm]
        _, x_img, y_img = view_axes(view.primary_deg, view.secondary_deg)
        return {c: np.array([p @ x_img, p @ y_img]) for c, p in plan.nadirs_lps_mm.items()}

    p = image(views.cusp_overlap)
    np.testing.assert_allclose(p["rcc"], p["lcc"], atol=1e-9)
    assert np.linalg.norm(p["ncc"] - p["lcc"]) == pytest.approx(1.5 * 12.0)
    p = image(views.three_cusp)
    np.testing.assert_allclose(p["rcc"], 0.5 * (p["ncc"] + p["lcc"]), atol=1e-9)
    assert np.linalg.norm(p["ncc"] - p["lcc"]) == pytest.approx(12.0 * math.sqrt(3.0))


def test_a_view_out_of_the_carm_range_is_replaced_by_the_nearest_coplanar_view_in_range() -> None:
    normal = np.array([-0.62, -0.30, 0.73])
    normal /= np.linalg.norm(normal)
    carm = CArmRange(secondary_deg=(-30.0, 30.0))
    view = nearest_in_range(normal, -25.0, float(s_curve(normal, -25.0)[0]), carm)
    assert carm.contains(view.primary_deg, view.secondary_deg)
    assert view.secondary_deg == pytest.approx(float(s_curve(normal, view.primary_deg)[0]), abs=1e-9)
    assert view.secondary_deg == pytest.approx(-30.0, abs=0.3)


def _edge_on_secondary_deg(case, points: np.ndarray, primary_deg: float) -> float:
    """The secondary angle at which the simulator's projector shows the annulus ring thinnest (0.5°,
    then 0.02° steps)."""
    view = case.imaging.view
    iso = tuple(float(v) for v in points.mean(axis=0))

    def width(b: float) -> float:
        projector = Projector(
            type(view)(primary_deg, float(b), view.sid_mm, view.sod_mm, view.detector_fov_mm, iso), 512
        )
        px = projector.project(points)
        return float(np.linalg.svd(px - px.mean(axis=0), compute_uv=False)[-1])

    coarse = np.arange(-60.0, 60.0, 0.5)
    best = float(coarse[int(np.argmin([width(b) for b in coarse]))])
    fine = np.arange(best - 0.5, best + 0.5, 0.02)
    return float(fine[int(np.argmin([width(b) for b in fine]))])


@pytest.mark.parametrize("seed", [3, 11])
def test_plan_s_curve_matches_the_stylised_simulators_edge_on_view_within_1_deg(seed: int) -> None:
    case = simulation_case("stylised", seed)
    root = RootGeometry(case.anatomy)
    plan = case_plan(case, "stylised")
    ring = np.array(
        [root.point(0.0, root.radius, a) for a in np.linspace(0, 2 * math.pi, 36, endpoint=False)]
    )
    for primary in (-30.0, 0.0, 30.0):
        planned = float(s_curve(plan.normal_lps, primary)[0])
        assert abs(planned - _edge_on_secondary_deg(case, ring, primary)) < 1.0


def test_plan_from_the_label_map_alone_matches_the_ct_renderers_edge_on_view_within_1_deg() -> None:
    plan = plan_from_labels(data_path(LABEL_FILE))  # no HU: the label-only path of --labels
    case = simulation_case("ct", 5)
    root = RootGeometry(case.anatomy)  # the CT renderer's root axis, in its root frame
    ring = np.array(
        [root.point(0.0, root.radius, a) for a in np.linspace(0, 2 * math.pi, 36, endpoint=False)]
    )
    for primary in (-20.0, 10.0, 40.0):
        planned = float(s_curve(plan.normal_lps, primary)[0])
        assert abs(planned - _edge_on_secondary_deg(case, ring, primary)) < 1.0
    assert np.linalg.norm(plan.centre_lps_mm - plan_from_labels().centre_lps_mm) < 1.5


def test_plan_command_prints_the_plan_as_json_and_writes_a_plan_file_the_node_reads(tmp_path, capsys) -> None:
    nadirs = _ring_nadirs(np.array([28.0, -18.0, -175.0]), np.array([-0.62, -0.30, 0.73]), 12.5)
    points = tmp_path / "nadirs.yaml"
    points.write_text(yaml.safe_dump({c: [float(v) for v in p] for c, p in nadirs.items()}))
    assert plan_main(["--points", str(points), "--out", str(tmp_path / "out"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    np.testing.assert_allclose(result["annulus_center_lps_mm"], [28.0, -18.0, -175.0], atol=1e-3)
    assert np.linalg.norm(result["annulus_normal_lps"]) == pytest.approx(1.0, abs=1e-5)
    assert len(result["cusp_overlap"]) == 2 and len(result["three_cusp"]) == 2
    assert all(len(p) == 2 for p in result["s_curve"])
    assert (tmp_path / "out" / "s_curve.png").stat().st_size > 0
    plan = read_plan(tmp_path / "out" / "plan.yaml")
    np.testing.assert_allclose(plan.normal_lps, result["annulus_normal_lps"], atol=1e-5)


def test_a_typed_in_stj_centre_and_the_label_maps_stj_travel_through_the_plan_file(tmp_path) -> None:
    nadirs = _ring_nadirs(np.array([28.0, -18.0, -175.0]), np.array([-0.62, -0.30, 0.73]), 12.5)
    points = tmp_path / "points.yaml"
    typed = {c: [float(v) for v in p] for c, p in nadirs.items()} | {"stj": [20.0, -22.0, -160.0]}
    points.write_text(yaml.safe_dump(typed))
    assert plan_main(["--points", str(points), "--out", str(tmp_path / "out")]) == 0
    np.testing.assert_allclose(read_plan(tmp_path / "out" / "plan.yaml").stj_centre_lps_mm, typed["stj"])
    labels = plan_from_labels()  # the STJ of the label map: on the root axis within 1 deg, 19 mm up
    up_mm = float((labels.stj_centre_lps_mm - labels.centre_lps_mm) @ labels.normal_lps)
    assert 15.0 < up_mm < 25.0
    del typed["stj"]
    points.write_text(yaml.safe_dump(typed))
    assert read_plan(points).stj_centre_lps_mm is None  # optional


def test_plan_command_refuses_a_points_file_without_the_three_nadirs(tmp_path, capsys) -> None:
    points = tmp_path / "nadirs.yaml"
    points.write_text(yaml.safe_dump({"ncc": [0.0, 0.0, 0.0], "lcc": [1.0, 0.0, 0.0]}))
    assert plan_main(["--points", str(points), "--out", str(tmp_path / "out")]) == 1
    assert "rcc" in capsys.readouterr().err
