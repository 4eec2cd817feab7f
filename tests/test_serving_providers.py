"""Execution-provider choice and environment settings of the service."""

from __future__ import annotations

import pytest

from serving.config import Settings
from serving.providers import CPU, CUDA, pick_precision, pick_providers

WITH_GPU = ["TensorrtExecutionProvider", CUDA, CPU]
CPU_ONLY = ["AzureExecutionProvider", CPU]


@pytest.mark.parametrize(
    "available, want, expected",
    [
        (WITH_GPU, "auto", [CUDA, CPU]),
        (WITH_GPU, "", [CUDA, CPU]),
        (WITH_GPU, "cuda", [CUDA, CPU]),
        (WITH_GPU, "CUDA", [CUDA, CPU]),
        (WITH_GPU, "cpu", [CPU]),
        (CPU_ONLY, "auto", [CPU]),
        (CPU_ONLY, "cpu", [CPU]),
        ([], "auto", [CPU]),
    ],
)
def test_pick_providers(available, want, expected):
    assert pick_providers(available, want) == expected


def test_cuda_demanded_but_missing_fails_loudly():
    with pytest.raises(ValueError, match="onnxruntime-gpu"):
        pick_providers(CPU_ONLY, "cuda")


def test_unknown_device_is_an_error():
    with pytest.raises(ValueError, match="GANZOO_DEVICE"):
        pick_providers(WITH_GPU, "tpu")


def test_settings_defaults_and_env():
    assert Settings.from_env({}) == Settings()
    assert Settings().max_n == 256 and Settings().max_pixels == 16_000_000
    s = Settings.from_env(
        {"GANZOO_DEVICE": " CPU ", "GANZOO_MODELS": "dcgan, cgan,,", "GANZOO_MAX_N": "9", "GANZOO_MAX_PIXELS": "100"}
    )
    assert s.device == "cpu" and s.models == frozenset({"dcgan", "cgan"})
    assert s.max_n == 9 and s.max_pixels == 100


@pytest.mark.parametrize(
    "env, words",
    [
        ({"GANZOO_MAX_N": "many"}, "GANZOO_MAX_N must be an integer"),
        ({"GANZOO_MAX_N": "0"}, "GANZOO_MAX_N must be >= 1"),
        ({"GANZOO_DEVICE": "gpu"}, "GANZOO_DEVICE must be one of"),
        ({"GANZOO_PRECISION": "int8"}, "GANZOO_PRECISION must be one of"),
    ],
)
def test_bad_settings_fail_at_start(env, words):
    with pytest.raises(ValueError, match=words):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "providers, want, expected",
    [
        ([CUDA, CPU], "auto", "fp16"),  # the GPU gets the half-precision graphs
        ([CPU], "auto", "fp32"),  # the CPU gains nothing from them
        ([CUDA, CPU], "fp32", "fp32"),
        ([CPU], "FP16", "fp16"),
        ([CUDA, CPU], "", "fp16"),
    ],
)
def test_pick_precision(providers, want, expected):
    assert pick_precision(providers, want) == expected


def test_precision_setting():
    assert Settings.from_env({}).precision == "auto"
    assert Settings.from_env({"GANZOO_PRECISION": " FP16 "}).precision == "fp16"
    with pytest.raises(ValueError, match="GANZOO_PRECISION"):
        pick_precision([CPU], "half")
