"""Checkpoint files: a network's config and weights, plus (for training checkpoints) the state to resume.

A checkpoint is a ``torch.save`` dict loadable with ``weights_only=True``:
``{"format": FORMAT, "config": ModelConfig dict, "model": state_dict, "metadata": dict, ...}``;
training checkpoints add ``optimizer``, ``scheduler``, ``ema`` and ``step``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tavi_perception.model.networks import ModelConfig, Network, build_model

FORMAT = "tavi_perception.keypoints/1"


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """Write atomically (temporary file then rename) so an interrupted run never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": FORMAT, **payload}, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a tavi_perception keypoint checkpoint")
    return data


def load_network(path: str | Path) -> tuple[Network, ModelConfig, dict]:
    """(network in eval mode, its config, its metadata). Uses the EMA weights when the file has them."""
    return network_from(load_checkpoint(path))


def network_from(data: dict) -> tuple[Network, ModelConfig, dict]:
    """:func:`load_network` for a checkpoint dict already read with :func:`load_checkpoint`."""
    config = ModelConfig.from_dict(data["config"])
    net = build_model(config)
    net.load_state_dict(data.get("ema") or data["model"])
    return net.eval(), config, dict(data.get("metadata", {}))
