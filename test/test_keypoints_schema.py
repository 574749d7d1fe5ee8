"""The keypoint schema: order, groups and the flip permutation every other part relies on."""

from __future__ import annotations

import pytest
from tavi_msgs.msg import Keypoint

from tavi_perception.keypoints import (
    FLIP_PERMUTATION,
    GROUP_MEMBERS,
    KEYPOINT_GROUP,
    KEYPOINT_NAMES,
    NUM_KEYPOINTS,
    Group,
    Kp,
    index_of,
)


def test_names_follow_the_published_label_order() -> None:
    assert KEYPOINT_NAMES == ("AA1", "AA2", "STJ1", "STJ2", "CP", "CM", "CD", "CT", "PT", "FE1", "FE2")
    assert NUM_KEYPOINTS == 11


def test_groups_partition_the_keypoints() -> None:
    members = [k for g in Group for k in GROUP_MEMBERS[g]]
    assert sorted(members) == list(Kp)
    assert GROUP_MEMBERS[Group.ANATOMICAL] == (Kp.AA1, Kp.AA2, Kp.STJ1, Kp.STJ2)
    assert GROUP_MEMBERS[Group.INSTRUMENTAL] == (Kp.CP, Kp.CM, Kp.CD, Kp.CT)
    assert GROUP_MEMBERS[Group.CONTOUR] == (Kp.PT, Kp.FE1, Kp.FE2)
    assert all(KEYPOINT_GROUP[k] == g for g in Group for k in GROUP_MEMBERS[g])


def test_group_values_match_the_message_constants() -> None:
    assert Group.ANATOMICAL == Keypoint.GROUP_ANATOMICAL
    assert Group.INSTRUMENTAL == Keypoint.GROUP_INSTRUMENTAL
    assert Group.CONTOUR == Keypoint.GROUP_CONTOUR


def test_flip_swaps_side_one_and_side_two_and_is_an_involution() -> None:
    perm = FLIP_PERMUTATION
    assert perm[Kp.AA1] == Kp.AA2 and perm[Kp.AA2] == Kp.AA1
    assert perm[Kp.STJ1] == Kp.STJ2 and perm[Kp.FE1] == Kp.FE2
    assert all(perm[k] == k for k in (Kp.CP, Kp.CM, Kp.CD, Kp.CT, Kp.PT))
    assert [perm[perm[i]] for i in range(NUM_KEYPOINTS)] == list(range(NUM_KEYPOINTS))


def test_index_of_is_case_insensitive_and_names_valid_keys_on_error() -> None:
    assert index_of("ct") == 7
    with pytest.raises(KeyError, match="valid names: AA1"):
        index_of("XX")
