"""The keypoint schema: the single source of truth for names, order, groups and flip pairs.

Order and names follow the 2021 multi-task TAVI paper (11 labels); the three groups follow the 2025
grouped model. "Side 1" and "side 2" are defined so that a horizontal image flip swaps them; every
augmentation that mirrors an image must permute labels with :data:`FLIP_PERMUTATION`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class Group(IntEnum):
    """Keypoint groups; values equal the ``GROUP_*`` constants of ``tavi_msgs/Keypoint``."""

    ANATOMICAL = 0
    INSTRUMENTAL = 1
    CONTOUR = 2


class Kp(IntEnum):
    """Schema index of every keypoint."""

    AA1 = 0  # aortic annulus hinge point, side 1
    AA2 = 1  # aortic annulus hinge point, side 2
    STJ1 = 2  # sinotubular junction, side 1
    STJ2 = 3  # sinotubular junction, side 2
    CP = 4  # catheter proximal: delivery-system anchor
    CM = 5  # catheter middle: bending point
    CD = 6  # catheter distal: capsule radiopaque marker band
    CT = 7  # catheter tip
    PT = 8  # pigtail catheter in the non-coronary cusp
    FE1 = 9  # stent frame edge 1 (ventricular end)
    FE2 = 10  # stent frame edge 2


NUM_KEYPOINTS: Final = len(Kp)
KEYPOINT_NAMES: Final[tuple[str, ...]] = tuple(k.name for k in Kp)

KEYPOINT_GROUP: Final[tuple[Group, ...]] = (
    Group.ANATOMICAL,
    Group.ANATOMICAL,
    Group.ANATOMICAL,
    Group.ANATOMICAL,
    Group.INSTRUMENTAL,
    Group.INSTRUMENTAL,
    Group.INSTRUMENTAL,
    Group.INSTRUMENTAL,
    Group.CONTOUR,
    Group.CONTOUR,
    Group.CONTOUR,
)

GROUP_MEMBERS: Final[dict[Group, tuple[Kp, ...]]] = {
    g: tuple(k for k in Kp if KEYPOINT_GROUP[k] == g) for g in Group
}

# Pairs of (side 1, side 2) labels that a horizontal flip exchanges.
FLIP_PAIRS: Final[tuple[tuple[Kp, Kp], ...]] = (
    (Kp.AA1, Kp.AA2),
    (Kp.STJ1, Kp.STJ2),
    (Kp.FE1, Kp.FE2),
)


def _flip_permutation() -> tuple[int, ...]:
    perm = list(range(NUM_KEYPOINTS))
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = int(b), int(a)
    return tuple(perm)


# After a horizontal flip, new keypoint i is old keypoint FLIP_PERMUTATION[i].
FLIP_PERMUTATION: Final[tuple[int, ...]] = _flip_permutation()


def index_of(name: str) -> int:
    """Schema index of a keypoint name (case-insensitive); raises ``KeyError`` naming the valid names."""
    try:
        return int(Kp[name.upper()])
    except KeyError:
        raise KeyError(f"unknown keypoint {name!r}; valid names: {', '.join(KEYPOINT_NAMES)}") from None
