"""Closed-loop runners (``demo``, ``loop``) and what they share with the launch files.

:func:`case_parameters` is the one source of the perception node's case-specific parameters: the demo,
the loop trials and ``launch/simulated_loop.launch.py`` all call it, so perception is never run against
a simulated case with another case's (or the default) calibration.
"""

from __future__ import annotations


def case_parameters(seed: int, image_size: int, renderer: str = "stylised") -> dict[str, float | int]:
    """perception_node parameters for simulated case ``seed`` of ``renderer`` imaged at ``image_size``² px.

    What an operator knows before the procedure: the C-arm calibration (``mm_per_px`` at the isocentre
    for this image width, as from the DICOM header) and the device specifications (valve frame height,
    closed CP-CD length of the delivery system). Nothing else of the simulated truth.
    """
    from tavi_perception.sim.carm import Projector
    from tavi_perception.sim.ct.simulator import simulation_case

    case = simulation_case(renderer, seed)
    return {
        "mm_per_px": float(Projector(case.imaging.view, image_size).mm_per_px),
        "calibration_width_px": int(image_size),
        "valve_frame_height_mm": float(case.devices.frame_height_mm),
        "cp_cd_length_mm": float(case.devices.cp_cd_closed_mm),
    }
