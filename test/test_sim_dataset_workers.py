"""``tavi-perception dataset --workers N``: the same files, byte for byte, as one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tavi_perception.sim.dataset import main


def _files(root: Path) -> dict[str, bytes]:
    """Every image and the annotations, by relative path."""
    paths = [*sorted((root / "images").glob("*.png")), root / "annotations.json"]
    return {str(p.relative_to(root)): p.read_bytes() for p in paths}


def _same_dataset(one: Path, many: Path) -> None:
    a, b = _files(one), _files(many)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    summary_one, summary_many = (json.loads((d / "dataset.json").read_text()) for d in (one, many))
    for summary in (summary_one, summary_many):
        summary.pop("command")
        summary.get("ct_bank", {}).pop("render_s", None)  # wall time, summed over the processes
    assert summary_one == summary_many


def test_stylised_cases_and_negatives_from_three_workers_equal_one_process(tmp_path: Path) -> None:
    args = ["--cases", "3", "--frames-per-case", "3", "--seed", "5", "--size", "128", "--quiet"]
    args += ["--negative-frames", "4", "--negative-kinds", "stylised_background,stripes"]
    assert main(["--out", str(tmp_path / "one"), *args]) == 0
    assert main(["--out", str(tmp_path / "three"), *args, "--workers", "3"]) == 0
    _same_dataset(tmp_path / "one", tmp_path / "three")
    coco = json.loads((tmp_path / "three" / "annotations.json").read_text())
    assert [image["id"] for image in coco["images"]] == list(range(1, 3 * 3 + 4 + 1))
    assert sum(image.get("negative", False) for image in coco["images"]) == 4


def test_ct_renderer_and_ct_negatives_from_two_workers_equal_one_process(tmp_path: Path) -> None:
    args = ["--renderer", "ct", "--cases", "1", "--frames-per-case", "2", "--seed", "5", "--size", "128"]
    args += ["--quiet", "--ct-voxel-mm", "3", "--negative-frames", "1", "--negative-kinds", "ct_anatomy"]
    assert main(["--out", str(tmp_path / "one"), *args]) == 0
    assert main(["--out", str(tmp_path / "two"), *args, "--workers", "2"]) == 0
    _same_dataset(tmp_path / "one", tmp_path / "two")


def test_workers_below_one_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x"), "--workers", "0", "--quiet"])
