"""Keypoint networks (ours and the 2025 baseline), losses, data loaders, augmentation, training,
metrics, evaluation and ONNX export. Sub-commands: ``train``, ``eval``, ``export``."""
