"""Training: deterministic by seed, resumable to the same weights, both architectures train."""

from __future__ import annotations

import json

import pytest
import torch
from keypoint_data import write_coco_dataset

from tavi_perception.model.checkpoint import load_checkpoint, load_network
from tavi_perception.model.train import main as train_main


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    train = write_coco_dataset(root / "train", frames=6, size=96, seed=1)
    return train, write_coco_dataset(root / "val", frames=3, size=96, seed=2)


def _train(data, out, *extra):
    args = ["--data", str(data), "--out", str(out), "--input-size", "64", "--batch-size", "2"]
    return train_main([*args, "--threads", "1", "--warmup", "2", *extra])


def _same_weights(a, b):
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    return all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"]) and all(
        torch.equal(sa["ema"][k], sb["ema"][k]) for k in sa["ema"]
    )


def test_same_seed_gives_the_same_weights(data, tmp_path):
    train, _ = data
    assert _train(train, tmp_path / "a", "--steps", "3") == 0
    assert _train(train, tmp_path / "b", "--steps", "3") == 0
    assert _train(train, tmp_path / "c", "--steps", "3", "--seed", "1") == 0
    assert _same_weights(tmp_path / "a" / "last.pt", tmp_path / "b" / "last.pt")
    assert not _same_weights(tmp_path / "a" / "last.pt", tmp_path / "c" / "last.pt")


def test_resume_from_a_mid_run_checkpoint_matches_the_uninterrupted_run(data, tmp_path):
    train, _ = data
    out = tmp_path / "r"
    assert _train(train, out, "--steps", "4", "--checkpoint-every", "2") == 0
    assert _train(train, tmp_path / "s", "--steps", "4", "--checkpoint-every", "2", "--stop-after", "2") == 0
    assert load_checkpoint(tmp_path / "s" / "last.pt")["step"] == 2
    assert _train(train, tmp_path / "s", "--steps", "4", "--checkpoint-every", "2", "--resume") == 0
    resumed = load_checkpoint(tmp_path / "s" / "last.pt")
    assert resumed["step"] == 4
    assert _same_weights(out / "last.pt", tmp_path / "s" / "last.pt")


def test_an_existing_run_is_not_overwritten_without_resume(data, tmp_path):
    train, _ = data
    assert _train(train, tmp_path / "a", "--steps", "1") == 0
    with pytest.raises(SystemExit, match="--resume"):
        _train(train, tmp_path / "a", "--steps", "1")


def test_baseline_trains_and_reports_validation_metrics(data, tmp_path):
    train, val = data
    out = tmp_path / "base"
    assert _train(train, out, "--arch", "baseline", "--steps", "2", "--val", str(val)) == 0
    _, config, meta = load_network(out / "last.pt")
    assert config.arch == "baseline" and meta["settings"]["arch"] == "baseline"
    metrics = json.loads((out / "val_metrics.json").read_text())
    assert metrics["frames"] == 3
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 2 and {"group", "focal", "wing"} <= log[-1].keys()


def test_fine_tuning_starts_from_the_init_weights_and_records_their_provenance(data, tmp_path):
    train, _ = data
    assert _train(train, tmp_path / "base", "--steps", "2") == 0
    base = tmp_path / "base" / "last.pt"
    assert _train(train, tmp_path / "ft", "--steps", "1", "--lr", "1e-12", "--init", str(base)) == 0
    tuned, start = load_checkpoint(tmp_path / "ft" / "last.pt"), load_checkpoint(base)
    for key, value in start["ema"].items():  # weights a vanishing step away from the init (EMA) ones
        if value.dtype.is_floating_point and "running_" not in key:  # batch-norm statistics move
            assert torch.allclose(tuned["model"][key], value, atol=1e-6), key
    init = tuned["metadata"]["init"]
    assert init["path"] == str(base) and len(init["sha256"]) == 64
    assert init["training"]["settings"]["steps"] == 2 and tuned["metadata"]["settings"]["init"] == str(base)


def test_the_heatmap_network_may_be_fine_tuned_at_another_input_size(data, tmp_path):
    train, _ = data
    assert _train(train, tmp_path / "base", "--steps", "1") == 0
    base = tmp_path / "base" / "last.pt"
    assert _train(train, tmp_path / "ft", "--steps", "1", "--init", str(base), "--input-size", "96") == 0
    _, config, meta = load_network(tmp_path / "ft" / "last.pt")
    assert config.input_size == 96 and meta["init"]["path"] == str(base)
    assert load_network(base)[1].input_size == 64


def test_init_from_another_network_is_refused(data, tmp_path):
    train, _ = data
    assert _train(train, tmp_path / "base", "--steps", "1", "--arch", "baseline") == 0
    with pytest.raises(SystemExit, match="another network"):
        _train(train, tmp_path / "ft", "--steps", "1", "--init", str(tmp_path / "base" / "last.pt"))


def test_several_training_folders_are_pooled_and_each_recorded(data, tmp_path):
    train, val = data
    assert _train(train, tmp_path / "one", "--steps", "1") == 0
    args = ["--data", str(train), str(val), "--out", str(tmp_path / "two"), "--input-size", "64"]
    assert train_main([*args, "--batch-size", "2", "--threads", "1", "--warmup", "2", "--steps", "1"]) == 0
    one = load_checkpoint(tmp_path / "one" / "last.pt")["metadata"]
    two = load_checkpoint(tmp_path / "two" / "last.pt")["metadata"]
    assert one["frames"] == 6 and "dataset" in one and "datasets" not in one
    assert two["frames"] == 6 + 3 and len(two["datasets"]) == 2 and "dataset" not in two
    assert two["settings"]["data"] == f"{train}, {val}"


def test_augmentation_ranges_are_options_recorded_with_the_run_and_change_the_training(data, tmp_path):
    train, _ = data
    old_ranges = ("--rotate-deg", "15", "--scale-range", "0.85", "1.2")
    assert _train(train, tmp_path / "old", "--steps", "2", *old_ranges) == 0
    assert _train(train, tmp_path / "new", "--steps", "2") == 0
    settings = load_checkpoint(tmp_path / "old" / "last.pt")["metadata"]["settings"]
    assert settings["rotate_deg"] == 15.0 and settings["scale_range"] == [0.85, 1.2]
    assert not _same_weights(tmp_path / "old" / "last.pt", tmp_path / "new" / "last.pt")
