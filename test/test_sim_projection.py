"""C-arm projection against analytic cases (isocentre, magnification, orientation, S-curve)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tavi_perception.geometry.frames import mm_per_px
from tavi_perception.sim.carm import CArmView, Projector, s_curve_cran_deg

SIZE = 512


def _view(
    lao: float = 0.0, cran: float = 0.0, iso: tuple[float, float, float] = (5.0, -3.0, 12.0)
) -> CArmView:
    return CArmView(lao, cran, sid_mm=1100.0, sod_mm=800.0, detector_fov_mm=220.0, isocentre_lps=iso)


@pytest.mark.parametrize(("lao", "cran"), [(0, 0), (30, 20), (-25, -15), (10, 35)])
def test_isocentre_projects_to_image_centre(lao: float, cran: float) -> None:
    view = _view(lao, cran)
    px = Projector(view, SIZE).project(np.array(view.isocentre_lps))
    np.testing.assert_allclose(px, [SIZE / 2, SIZE / 2], atol=1e-9)


@pytest.mark.parametrize(("lao", "cran"), [(0, 0), (20, -10), (-30, 25)])
def test_offset_in_isocentre_plane_moves_by_mm_per_px(lao: float, cran: float) -> None:
    view = _view(lao, cran)
    proj = Projector(view, SIZE)
    iso = np.array(view.isocentre_lps)
    _, x_img, y_img = view.axes()
    px = proj.project(np.array([iso + 12.0 * x_img, iso - 7.0 * y_img]))
    expected_scale = mm_per_px(220.0 / SIZE, 1100.0, 800.0)
    assert proj.mm_per_px == pytest.approx(expected_scale)
    np.testing.assert_allclose(px[0], [SIZE / 2 + 12.0 / expected_scale, SIZE / 2], atol=1e-9)
    np.testing.assert_allclose(px[1], [SIZE / 2, SIZE / 2 - 7.0 / expected_scale], atol=1e-9)


def test_magnification_grows_towards_the_source() -> None:
    view = _view(15, 5)
    proj = Projector(view, SIZE)
    beam, x_img, _ = view.axes()
    iso = np.array(view.isocentre_lps)
    spacing = 220.0 / SIZE
    for depth_mm in (-150.0, 0.0, 120.0):  # negative = towards the source
        px = proj.project(iso + depth_mm * beam + 10.0 * x_img)
        expected = 10.0 * 1100.0 / (800.0 + depth_mm) / spacing
        assert px[0] - SIZE / 2 == pytest.approx(expected)


def test_ap_view_shows_patient_left_right_and_head_up() -> None:
    proj = Projector(_view(0, 0, iso=(0.0, 0.0, 0.0)), SIZE)
    centre, left, head, posterior = proj.project(
        np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 0.0, 10.0], [0.0, 30.0, 0.0]])
    )
    assert left[0] > centre[0] and left[1] == pytest.approx(centre[1])
    assert head[1] < centre[1] and head[0] == pytest.approx(centre[0])
    np.testing.assert_allclose(posterior, centre, atol=1e-9)  # along the beam: same pixel


def test_lao_puts_posterior_structures_to_the_right() -> None:
    spine = np.array([0.0, 70.0, 0.0])  # posterior of the isocentre
    lao = Projector(_view(30, 0, iso=(0.0, 0.0, 0.0)), SIZE).project(spine)
    rao = Projector(_view(-30, 0, iso=(0.0, 0.0, 0.0)), SIZE).project(spine)
    assert lao[0] > SIZE / 2 > rao[0]


@pytest.mark.parametrize("lao", [-25.0, 0.0, 20.0, 35.0])
def test_plane_on_its_s_curve_is_seen_edge_on(lao: float) -> None:
    normal = np.array([-0.55, 0.25, 0.8])
    normal /= np.linalg.norm(normal)
    cran = s_curve_cran_deg(normal, lao)
    assert math.tan(math.radians(cran)) == pytest.approx(
        (normal[1] * math.cos(math.radians(lao)) - normal[0] * math.sin(math.radians(lao))) / normal[2]
    )
    view = _view(lao, cran)
    u = np.cross(normal, [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    w = np.cross(normal, u)
    angles = np.linspace(0, 2 * np.pi, 36, endpoint=False)[:, None]
    circle = np.array(view.isocentre_lps) + 12.0 * (np.cos(angles) * u + np.sin(angles) * w)
    px = Projector(view, SIZE).project(circle)
    singular = np.linalg.svd(px - px.mean(axis=0), compute_uv=False)
    assert singular[1] < 1e-6 * singular[0]  # a line
    off_view = Projector(_view(lao, cran + 20.0), SIZE).project(circle)
    off = np.linalg.svd(off_view - off_view.mean(axis=0), compute_uv=False)
    assert off[1] > 0.2 * off[0]  # an ellipse


def test_pixel_rays_pass_through_their_pixels() -> None:
    proj = Projector(_view(-12, 18), SIZE)
    xs, ys = np.array([0.5, 100.25, 511.5]), np.array([3.0, 256.0, 400.75])
    rays = proj.rays(xs, ys)
    points = proj.source_lps + 900.0 * rays
    np.testing.assert_allclose(proj.project(points), np.stack([xs, ys], axis=1), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=1), 1.0)


def test_view_rejects_impossible_geometry() -> None:
    with pytest.raises(ValueError, match="SOD < SID"):
        CArmView(0, 0, sid_mm=800.0, sod_mm=900.0, detector_fov_mm=200.0)
    with pytest.raises(ValueError, match="detector"):
        CArmView(0, 0, sid_mm=1000.0, sod_mm=700.0, detector_fov_mm=0.0)
