"""CT renderer: ray caster geometry, bank-composed frames against direct rendering, frame truth, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tavi_perception.keypoints import Kp
from tavi_perception.sim import dataset
from tavi_perception.sim.carm import CArmView, Projector, s_curve_cran_deg
from tavi_perception.sim.ct.anatomy import ct_case
from tavi_perception.sim.ct.bank import ViewBank
from tavi_perception.sim.ct.layers import MU_IODINE_PER_MM, render_volumes
from tavi_perception.sim.ct.raycast import cast
from tavi_perception.sim.ct.scene import CTScene
from tavi_perception.sim.ct.simulator import create_simulator
from tavi_perception.sim.ct.volume import load_ct, mu_from_hu
from tavi_perception.sim.delivery import DeliveryState
from tavi_perception.sim.raster import ellipsoid_chords

SIZE = 128
COARSE_MM = 4.0  # coarse voxels keep these tests light


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> ViewBank:
    return ViewBank(render_volumes(COARSE_MM), tmp_path_factory.mktemp("ct_bank"))


def _centroid(image: np.ndarray) -> np.ndarray:
    ys, xs = np.indices(image.shape)
    w = image / image.sum()
    return np.array([(xs * w).sum() + 0.5, (ys * w).sum() + 0.5])  # pixel centres at +0.5


def test_a_3d_point_projects_to_the_same_pixel_in_both_renderers():
    view = CArmView(20.0, 10.0, 1000.0, 700.0, 120.0, (2.0, 1.0, 3.0))
    proj = Projector(view, SIZE)
    centre, radius = np.array([9.0, -6.0, 14.0]), 3.0
    expected = proj.project(centre)
    # stylised renderer: analytic chords through a sphere
    rays = proj.pixel_grid_rays(0, 0, SIZE, SIZE)
    stylised = ellipsoid_chords(proj.source_lps, rays, centre, np.eye(3), np.full(3, radius))
    # CT renderer: our ray caster through the same sphere as a voxel volume
    spacing = 0.25
    n = 40
    origin = centre - 0.5 * (n - 1) * spacing
    zyx = np.indices((n, n, n)).reshape(3, -1).T
    pts = origin + zyx[:, ::-1] * spacing
    ball = (np.linalg.norm(pts - centre, axis=1) <= radius).reshape(n, n, n).astype(np.float32)
    ct = cast(ball[None], origin, spacing, proj, step_mm=0.1)[0][0]
    for image in (stylised, ct):
        np.testing.assert_allclose(_centroid(image), expected, atol=0.05)
    # and the line integral is the chord: 2 R through the centre
    assert ct.max() == pytest.approx(2.0 * radius, rel=0.05)


def test_bank_composed_frame_equals_direct_render_within_noise(bank):
    root = bank.volumes.root
    case = ct_case(5, root, lao_deg=15.0)
    scene = CTScene(case, bank, 2 * SIZE)  # the noise per pixel of 128² is below the coarse voxels' detail
    ts = np.linspace(0.0, 2.0, 41)
    t = float(ts[np.argmax(np.linalg.norm(scene.motion.root_mm(ts), axis=1))])  # largest excursion
    assert np.linalg.norm(scene.motion.root_mm(t)) > 4.0
    state = DeliveryState(-5.0)
    for fill in (0.0, 1.0):
        composed = scene.attenuation(t, state, fill).copy()
        direct = scene.direct_attenuation(t, state, fill)
        sigma = scene.noise_sigma(direct)
        within = np.abs(composed - direct) <= sigma
        assert within.mean() > 0.99
    # and the comparison sees motion: the frame composed at rest is not within noise of the moved one
    t_rest = float(ts[np.argmin(np.linalg.norm(scene.motion.root_mm(ts), axis=1))])
    at_rest = scene.attenuation(t_rest, state, 1.0)
    assert (np.abs(at_rest - direct) <= sigma).mean() < 0.97


def test_static_plus_moving_volumes_are_the_ct_and_the_iodine_sits_above_the_annulus(bank):
    vols = bank.volumes
    ct = load_ct().shifted(vols.root.landmarks.annulus_centre_lps).resampled(COARSE_MM)
    np.testing.assert_allclose(vols.static + vols.moving, mu_from_hu(ct.hu), atol=1e-6)
    inside, _ = vols.crop(vols.moving, vols.moving_box)
    assert np.abs(inside).sum() == pytest.approx(np.abs(vols.moving).sum()) and np.abs(inside).max() > 0.005
    zyx = np.argwhere(vols.iodine > 0.5 * MU_IODINE_PER_MM)
    s = (vols.origin_lps + zyx[:, ::-1] * vols.spacing_mm) @ vols.root.axis
    assert len(s) > 0 and s.min() > -COARSE_MM  # the closed leaflets bound the contrast from below


def test_view_bank_reloads_a_view_from_its_cache_directory_without_ray_casting(bank):
    view = ct_case(21, bank.volumes.root, lao_deg=5.0).imaging.view
    first = bank.layers(view, 64)
    again = ViewBank(bank.volumes, bank.cache_dir)
    assert again.build([view], 64, progress=False) >= 0.0
    assert again.rendered_views == 0
    for name in ("static", "moving", "iodine", "moving_depth_mm", "iodine_depth_mm"):
        np.testing.assert_array_equal(getattr(again.layers(view, 64), name), getattr(first, name))
    assert again.layers(view, 64).margin_px == first.margin_px


def test_ct_frame_truth_tip_depth_comes_from_the_true_geometry(bank):
    root = bank.volumes.root
    lao = 10.0
    case = ct_case(8, root, lao_deg=lao, cran_deg=s_curve_cran_deg(root.axis, lao))
    sim = create_simulator("ct", case, image_size=SIZE, bank=bank)
    sim.place(DeliveryState(4.0))
    frame = sim.step()
    rail = sim.scene.delivery.rail
    assert frame.truth.tip_depth_3d_mm == pytest.approx(-4.0 * float(rail.axis @ root.axis), abs=1e-9)
    assert frame.truth.tip_depth_mm == pytest.approx(frame.truth.tip_depth_3d_mm, abs=1.0)  # coplanar view
    # AA1/AA2 are the label-derived hinge points, projected where the root is at this time
    offset = sim.scene.motion.root_mm(frame.t_s)
    hinges = sim.scene.projector.project(np.array([root.nadir("NCC"), root.nadir("LCC")]) + offset)
    hinges = hinges[np.argsort(hinges[:, 0])]  # side 1 = the smaller image x
    np.testing.assert_allclose(frame.keypoints_px[[Kp.AA1, Kp.AA2]], hinges, atol=1e-9)
    assert frame.image.shape == (SIZE, SIZE) and frame.image.dtype == np.uint8


def test_ct_frames_at_twice_the_size_in_mono16_have_doubled_keypoints(bank):
    case = ct_case(12, bank.volumes.root, lao_deg=0.0)
    small = create_simulator("ct", case, image_size=SIZE // 2, bank=bank).frame_at(3.0)
    large = create_simulator("ct", case, image_size=SIZE, bit_depth=16, bank=bank).frame_at(3.0)
    assert small.image.dtype == np.uint8 and large.image.dtype == np.uint16
    assert large.image.shape == (SIZE, SIZE)
    np.testing.assert_allclose(large.keypoints_px, 2.0 * small.keypoints_px, atol=1e-9)
    assert large.image.max() > 1000  # the full 16-bit range is used


def test_aortogram_fills_the_root_and_washout_restores_blood(bank):
    sim = create_simulator("ct", ct_case(3, bank.volumes.root, lao_deg=-10.0), image_size=SIZE, bank=bank)
    state = DeliveryState(-15.0)
    scene = sim.scene
    plain = scene.attenuation(1.0, state, 0.0).copy()
    full = scene.attenuation(1.0, state, 1.0).copy()
    root_px = np.round(scene.projector.project(scene.root.point(5.0, 0.0, 0.0) + scene.motion.root_mm(1.0)))
    x, y = root_px.astype(int)
    assert full[y, x] - plain[y, x] > 0.5  # ~1 of attenuation through the filled root
    np.testing.assert_array_equal(scene.attenuation(1.0, state, 0.0), plain)


def test_dataset_with_the_ct_renderer_writes_the_same_coco_fields(tmp_path):
    out_ct, out_st = tmp_path / "ct", tmp_path / "st"
    common = ["--cases", "1", "--frames-per-case", "2", "--size", str(SIZE), "--quiet"]
    assert dataset.main(["--out", str(out_ct), "--renderer", "ct", *common]) == 0
    assert dataset.main(["--out", str(out_st), *common]) == 0
    ct, st = (json.loads((d / "annotations.json").read_text()) for d in (out_ct, out_st))
    assert ct["info"]["renderer"] == "ct"
    assert set(ct["images"][0]) == set(st["images"][0])
    assert set(ct["images"][0]["true_geometry"]) == set(st["images"][0]["true_geometry"])
    assert len(ct["annotations"][0]["keypoints"]) == 33
    assert (out_ct / ct["images"][0]["file_name"]).exists()
    summary = json.loads((out_ct / "dataset.json").read_text())
    assert summary["renderer"] == "ct" and summary["ct_bank"]["views_rendered"] >= 1
