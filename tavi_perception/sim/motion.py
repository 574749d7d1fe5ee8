"""Cardiac and respiratory motion of the aortic root (and everything riding on it), in patient LPS mm.

The root translates rigidly: cardiac motion along a per-case direction (mostly along the root axis,
towards the apex in systole) with a systolic pulse, respiratory motion purely cranio-caudal (inferior
on inspiration). The pigtail, the delivery system and the guidewire move with the root, so the annulus
can be carried with the pigtail; the heart/lung shadow moves with respiration and pulses with the beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SYSTOLE_RISE = 0.30  # fraction of the cardiac cycle from end-diastole to peak systolic excursion
SYSTOLE_RETURN = 0.35  # fraction of the cycle for the return to the diastolic position


def smoothstep(x: np.ndarray | float) -> np.ndarray:
    """0 below 0, 1 above 1, C1-continuous cubic in between."""
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def cardiac_waveform(phase: np.ndarray | float) -> np.ndarray:
    """Excursion 0..1 over one cycle (phase in cycles): fast systolic rise, return, diastolic rest."""
    p = np.mod(phase, 1.0)
    rise = smoothstep(p / SYSTOLE_RISE)
    fall = 1.0 - smoothstep((p - SYSTOLE_RISE) / SYSTOLE_RETURN)
    return np.where(p < SYSTOLE_RISE, rise, fall)


def respiratory_waveform(phase: np.ndarray | float) -> np.ndarray:
    """Excursion 0..1 over one breath (phase in breaths), 1 at end-inspiration."""
    return 0.5 * (1.0 - np.cos(2.0 * np.pi * np.mod(phase, 1.0)))


@dataclass(frozen=True)
class MotionParams:
    """Per-case motion (docs/simulator.md: 60-100 bpm, root excursion up to ~10 mm; 12-20/min, ~5 mm)."""

    heart_rate_bpm: float
    cardiac_amplitude_mm: float  # peak systolic excursion of the root
    cardiac_direction_lps: tuple[float, float, float]  # unit vector
    cardiac_phase0: float  # [cycles] phase at t = 0
    respiratory_rate_per_min: float
    respiratory_amplitude_mm: float  # peak cranio-caudal excursion (inferior at end-inspiration)
    respiratory_phase0: float  # [breaths] phase at t = 0
    heart_pulsation: float = 0.03  # relative shrink of the heart shadow at peak systole


class Motion:
    """Displacements as functions of time."""

    def __init__(self, params: MotionParams) -> None:
        self.params = params
        self._cardiac_dir = np.asarray(params.cardiac_direction_lps, dtype=float)
        self._cardiac_dir = self._cardiac_dir / np.linalg.norm(self._cardiac_dir)

    def cardiac_level(self, t_s: np.ndarray | float) -> np.ndarray:
        """Cardiac excursion 0..1 at ``t_s``."""
        p = self.params
        return cardiac_waveform(p.cardiac_phase0 + np.asarray(t_s) * p.heart_rate_bpm / 60.0)

    def cardiac_mm(self, t_s: np.ndarray | float) -> np.ndarray:
        """Cardiac displacement of the root (..., 3) [mm]."""
        level = self.cardiac_level(t_s)
        return np.asarray(level)[..., None] * self.params.cardiac_amplitude_mm * self._cardiac_dir

    def respiratory_mm(self, t_s: np.ndarray | float) -> np.ndarray:
        """Respiratory displacement (..., 3) [mm], along -z (inferior) on inspiration."""
        p = self.params
        level = respiratory_waveform(
            p.respiratory_phase0 + np.asarray(t_s) * p.respiratory_rate_per_min / 60.0
        )
        out = np.zeros((*np.shape(level), 3))
        out[..., 2] = -p.respiratory_amplitude_mm * level
        return out

    def root_mm(self, t_s: np.ndarray | float) -> np.ndarray:
        """Total displacement of the root and the devices in it (..., 3) [mm]."""
        return self.cardiac_mm(t_s) + self.respiratory_mm(t_s)
