"""Export and inference engines: ONNX Runtime equals torch, provider fallback, any input size and depth."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tavi_perception.inference import PROVIDER_PREFERENCE, create_engine, select_providers
from tavi_perception.inference.engines import OnnxRuntimeEngine, file_sha256
from tavi_perception.inference.processing import preprocess
from tavi_perception.keypoints import FLIP_PERMUTATION
from tavi_perception.model.checkpoint import save_checkpoint
from tavi_perception.model.export import export
from tavi_perception.model.export import main as export_main
from tavi_perception.model.networks import ModelConfig, build_model


def _checkpoint(path, arch: str):
    torch.manual_seed(0)
    config = ModelConfig(arch=arch, input_size=64)
    net = build_model(config)
    with torch.no_grad():  # non-trivial batch-norm statistics, so the export is tested on real arithmetic
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        if arch == "heatmap":  # sub-cell offsets start at 0: give them values, so they are tested too
            net.out.weight.normal_(0.0, 0.05)
    save_checkpoint(path, {"config": config.to_dict(), "model": net.state_dict(), "metadata": {"seed": 0}})
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    ckpt = _checkpoint(root / "ckpt.pt", "heatmap")
    onnx_path = root / "tiny.onnx"
    meta = export(ckpt, onnx_path, metrics={"f1": 0.5})
    return onnx_path, meta


def _frame(size: int, dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(size)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 0.3 + 0.2 * np.sin(9 * xx) * np.cos(7 * yy) + 0.02 * rng.standard_normal((size, size))
    return (np.clip(img, 0, 1) * np.iinfo(dtype).max).astype(dtype)


def test_export_writes_onnx_torch_weights_and_metadata_with_hashes(exported):
    onnx_path, meta = exported
    sidecar = json.loads(onnx_path.with_suffix(".json").read_text())
    assert sidecar["onnx"]["sha256"] == file_sha256(onnx_path)
    assert sidecar["torch"]["sha256"] == file_sha256(onnx_path.with_suffix(".pt"))
    assert sidecar["keypoint_names"][0] == "AA1" and len(sidecar["keypoint_names"]) == 11
    assert sidecar["config"]["input_size"] == 64 and sidecar["metrics"] == {"f1": 0.5}
    assert sidecar["training"] == {"seed": 0}
    assert meta["onnx_torch_max_deviation"] <= 1e-4


@pytest.mark.parametrize(("size", "dtype"), [(512, np.uint8), (1024, np.uint16), (300, np.float32)])
def test_onnxruntime_output_equals_torch_output(exported, size, dtype):
    onnx_path, _ = exported
    a = create_engine(onnx_path, backend="onnxruntime", threads=1)
    b = create_engine(onnx_path, backend="torch", threads=1)
    image = _frame(size, np.uint16 if dtype == np.uint16 else np.uint8).astype(dtype)
    da, db = a.infer(image), b.infer(image)
    assert da.backend == "onnxruntime:CPUExecutionProvider" and db.backend == "torch:cpu"
    assert da.xy_px.shape == (11, 2) and da.visibility.shape == (11,) and da.group_probability.shape == (3,)
    np.testing.assert_allclose(da.xy_px, db.xy_px, atol=1e-3 * size)
    np.testing.assert_allclose(da.visibility, db.visibility, atol=1e-5)
    np.testing.assert_allclose(da.group_probability, db.group_probability, atol=1e-5)
    assert (da.xy_px >= 0).all() and (da.xy_px[:, 0] <= size).all() and (da.xy_px[:, 1] <= size).all()


def test_mono16_and_mono8_of_one_frame_give_the_same_network_input():
    img16 = _frame(512, np.uint16)
    img8 = (img16 // 257).astype(np.uint8)
    np.testing.assert_allclose(preprocess(img16, 64), preprocess(img8, 64), atol=0.02)


def test_provider_choice_falls_back_to_cpu_when_cuda_is_absent(exported, caplog):
    assert "CUDAExecutionProvider" not in ort.get_available_providers()  # this machine has no GPU build
    onnx_path, _ = exported
    with caplog.at_level(logging.INFO, logger="tavi_perception.inference.engines"):
        engine = OnnxRuntimeEngine(onnx_path, threads=2)
    assert engine.backend == "onnxruntime:CPUExecutionProvider"
    assert "CUDAExecutionProvider not available" in caplog.text
    assert "TensorrtExecutionProvider not available" in caplog.text


def test_select_providers_keeps_preference_order_and_always_ends_with_cpu():
    available = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    assert select_providers(available) == list(PROVIDER_PREFERENCE)
    assert select_providers(["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert select_providers([]) == ["CPUExecutionProvider"]


def test_thread_count_is_applied_to_the_session(exported):
    onnx_path, _ = exported
    engine = OnnxRuntimeEngine(onnx_path, threads=3)
    assert engine.session.get_session_options().intra_op_num_threads == 3
    with pytest.raises(ValueError, match="threads"):
        OnnxRuntimeEngine(onnx_path, threads=0)


def test_bad_inputs_are_clear_errors(exported, tmp_path):
    onnx_path, _ = exported
    engine = create_engine(onnx_path)
    with pytest.raises(ValueError, match="single-channel"):
        engine.infer(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown backend"):
        create_engine(onnx_path, backend="tensorflow")
    with pytest.raises(FileNotFoundError):
        create_engine(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match=r"\.onnx"):
        create_engine(onnx_path.with_suffix(".pt"), backend="onnxruntime")


def test_baseline_exports_and_runs_in_onnxruntime(tmp_path):
    ckpt = _checkpoint(tmp_path / "base.pt", "baseline")
    meta = export(ckpt, tmp_path / "base.onnx")
    assert meta["arch"] == "baseline" and meta["onnx_torch_max_deviation"] <= 1e-4
    det = create_engine(tmp_path / "base.onnx").infer(_frame(512))
    assert det.xy_px.shape == (11, 2) and np.isfinite(det.xy_px).all()


@pytest.mark.parametrize("arch", ["heatmap", "baseline", "mobilenetv2"])
def test_flip_test_gives_mirror_consistent_detections_in_both_backends(tmp_path, arch):
    meta = export(_checkpoint(tmp_path / "ckpt.pt", arch), tmp_path / "flip.onnx", flip_test=True)
    assert (
        meta["deploy"] == {"flip_test": True, "input_size": 64} and meta["onnx_torch_max_deviation"] <= 1e-4
    )
    onnx_engine = create_engine(tmp_path / "flip.onnx", threads=1)
    torch_engine = create_engine(tmp_path / "flip.onnx", backend="torch", threads=1)
    image = _frame(512)
    det, mirrored = onnx_engine.infer(image), onnx_engine.infer(image[:, ::-1].copy())
    back = mirrored.xy_px[list(FLIP_PERMUTATION)]
    back[:, 0] = image.shape[1] - back[:, 0]
    np.testing.assert_allclose(det.xy_px, back, atol=0.05)
    np.testing.assert_allclose(det.visibility, mirrored.visibility[list(FLIP_PERMUTATION)], atol=1e-5)
    np.testing.assert_allclose(torch_engine.infer(image).xy_px, det.xy_px, atol=0.05)


def test_without_flip_test_detections_are_not_mirror_consistent(exported):
    _, meta = exported
    assert meta["deploy"] == {"flip_test": False, "input_size": 64}
    onnx_path, _ = exported
    session = OnnxRuntimeEngine(onnx_path, threads=1)
    x = preprocess(_frame(512), 64)
    plain = session.run(x)
    flipped = session.run(x[..., ::-1].copy())
    assert not np.allclose(plain[0][0, :, 0], 1.0 - flipped[0][0, list(FLIP_PERMUTATION), 0], atol=1e-3)


def test_export_at_another_input_size_runs_both_backends_at_that_size(tmp_path):
    ckpt = _checkpoint(tmp_path / "ckpt.pt", "heatmap")
    meta = export(ckpt, tmp_path / "big.onnx", input_size=96)
    assert meta["deploy"]["input_size"] == 96 and meta["input"]["shape"] == [1, 1, 96, 96]
    assert meta["config"]["input_size"] == 64  # the network as trained
    onnx_engine = create_engine(tmp_path / "big.onnx", threads=1)
    torch_engine = create_engine(tmp_path / "big.onnx", backend="torch", threads=1)
    assert onnx_engine.input_size == torch_engine.input_size == 96
    image = _frame(512)
    np.testing.assert_allclose(onnx_engine.infer(image).xy_px, torch_engine.infer(image).xy_px, atol=0.05)
    trained_size = create_engine(tmp_path / "ckpt.pt", backend="torch", threads=1)
    assert trained_size.input_size == 64
    assert not np.allclose(trained_size.infer(image).xy_px, torch_engine.infer(image).xy_px, atol=0.05)


def test_export_refuses_an_input_size_the_network_cannot_take(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "ckpt.pt", "heatmap")
    args = ["--checkpoint", str(ckpt), "--out", str(tmp_path / "bad.onnx"), "--input-size", "100"]
    assert export_main(args) == 2
    assert "multiple of 32" in capsys.readouterr().err and not (tmp_path / "bad.onnx").exists()
