"""The GPU Bento declares its GPU: BentoML itself must read one GPU for the `ganzoo-inference` service from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json
from bentoml._internal.configuration.containers import BentoMLContainer
from serving.service import Ganzoo
Ganzoo.inject_config()
svc = Ganzoo.dependencies["inference"].on  # the inference service runs the graphs: it takes the GPU
print(json.dumps({"name": svc.name, "resources": BentoMLContainer.config.services[svc.name].get()["resources"]}))
"""


def _envs(path: Path) -> dict[str, str]:
    return {e["name"]: e["value"] for e in yaml.safe_load(path.read_text()).get("envs", [])}


def _resources(env_extra: dict[str, str], tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "BENTOML_CONFIG_OPTIONS"}
    env |= {"BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True", "PYTHONPATH": str(ROOT),
            **env_extra}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_gpu_bentofile_asks_bentoml_for_one_gpu_and_the_cpu_one_for_none(tmp_path):
    gpu = yaml.safe_load((ROOT / "bentofile.gpu.yaml").read_text())
    assert gpu["python"]["lock_packages"] is False
    packages = (ROOT / gpu["python"]["requirements_txt"]).read_text().splitlines()
    assert any(p.startswith("onnxruntime-gpu==") for p in packages)
    assert not any(p.startswith("onnxruntime==") for p in packages), "never both onnxruntime packages"
    envs = _envs(ROOT / "bentofile.gpu.yaml")
    assert envs["GANZOO_DEVICE"] == "cuda"
    got = _resources({"BENTOML_CONFIG_OPTIONS": envs["BENTOML_CONFIG_OPTIONS"]}, tmp_path)
    assert got == {"name": "ganzoo-inference", "resources": {"gpu": 1}}
    cpu_envs = _envs(ROOT / "bentofile.yaml")
    assert "BENTOML_CONFIG_OPTIONS" not in cpu_envs and cpu_envs["GANZOO_DEVICE"] == "cpu"
