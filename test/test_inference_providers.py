"""ONNX Runtime provider selection (node parameters ort_provider, trt_engine_cache_path, trt_fp16) on a
machine whose ONNX Runtime is the CPU build: explicit GPU requests fall back to CPU and say so."""

from __future__ import annotations

import logging

import onnxruntime as ort
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from ros_graph import Probe

from tavi_perception.inference import OrtOptions, create_engine
from tavi_perception.inference.engines import PROVIDER_CHOICES, OnnxRuntimeEngine
from tavi_perception.model.checkpoint import save_checkpoint
from tavi_perception.model.export import export
from tavi_perception.model.networks import ModelConfig, build_model

CPU_BUILD = "CUDAExecutionProvider" not in ort.get_available_providers()
needs_cpu_build = pytest.mark.skipif(not CPU_BUILD, reason="checks the fallback of the CPU-only build")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("providers")
    torch.manual_seed(0)
    config = ModelConfig(arch="heatmap", input_size=64)
    ckpt = root / "ckpt.pt"
    save_checkpoint(
        ckpt, {"config": config.to_dict(), "model": build_model(config).state_dict(), "metadata": {}}
    )
    export(ckpt, root / "tiny.onnx")
    return root / "tiny.onnx"


@needs_cpu_build
@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_asking_for_a_gpu_provider_without_it_runs_on_cpu_with_a_warning(model, provider, caplog):
    with caplog.at_level(logging.WARNING, logger="tavi_perception.inference.engines"):
        engine = create_engine(model, ort_options=OrtOptions(provider, "/tmp/trt_cache", trt_fp16=True))
    assert engine.backend == "onnxruntime:CPUExecutionProvider"
    wanted = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}[provider]
    assert engine.fallback.startswith(f"asked for {wanted}, running on CPUExecutionProvider")
    assert "onnxruntime-gpu" in engine.fallback
    assert engine.fallback in caplog.text


def test_cpu_and_auto_report_no_fallback(model):
    assert OnnxRuntimeEngine(model, options=OrtOptions("cpu")).fallback == ""
    assert OnnxRuntimeEngine(model, options=OrtOptions("auto")).fallback == ""  # auto asks for none


def test_tensorrt_options_carry_fp16_and_the_engine_cache_only_to_tensorrt():
    providers = list(PROVIDER_CHOICES["tensorrt"])
    trt, cuda, cpu = OrtOptions("tensorrt", "/var/cache/trt", trt_fp16=True).provider_options(providers)
    assert trt == {
        "trt_fp16_enable": "True",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": "/var/cache/trt",
    }
    assert cuda == {} and cpu == {}
    assert OrtOptions("tensorrt").provider_options(providers)[0] == {"trt_fp16_enable": "False"}


def test_an_unknown_provider_is_refused():
    with pytest.raises(ValueError, match="unknown provider 'gpu'"):
        OrtOptions("gpu")


@pytest.mark.ros
@needs_cpu_build
def test_the_node_asked_for_cuda_runs_on_cpu_and_reports_why_in_diagnostics():
    params = ["-p", "ort_provider:=cuda", "-p", "trt_fp16:=true", "-p", "diagnostics_period_s:=0.2"]
    with Probe() as probe:
        node = probe.start("tavi_perception.ros.perception_node", params)
        diagnostics = probe.collect(DiagnosticArray, "/diagnostics")

        def values() -> dict[str, str]:
            for msg in reversed(diagnostics):
                for status in msg.status:
                    found = {kv.key: kv.value for kv in status.values}
                    if found.get("backend"):
                        return found
            return {}

        assert probe.spin_until(lambda: bool(values()), 90), "no /diagnostics with a backend"
        assert node.alive()
    assert values()["backend"] == "onnxruntime:CPUExecutionProvider"
    assert values()["provider_fallback"].startswith("asked for CUDAExecutionProvider")


@pytest.mark.ros
def test_the_node_refuses_an_unknown_provider():
    with Probe() as probe:
        node = probe.start("tavi_perception.ros.perception_node", ["-p", "ort_provider:=gpu"])
        code, output = node.wait(timeout_s=60)
    assert code != 0 and "not one of" in output, output
