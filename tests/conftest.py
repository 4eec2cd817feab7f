"""Shared fixtures.

Serving fixtures (``serving_*``): tiny ONNX models that obey each role's signature in
docs/ARTIFACTS.md, imported into a temporary BentoML home, and a real ``bentoml serve``
process on a free port. Torch is used here to build the graphs only; serving never imports it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------
# serving: tiny artifacts
# --------------------------------------------------------------------------------------------
LATENT = 8
SIZE = 8
LAYERS = 4  # style layers of the StyleGAN-like model
WDIM = 8
NOISE = 6
CLASSES = ["zero", "one", "two"]
# models the integration server is asked to serve (GANZOO_MODELS); "hidden" is stored, not served
SERVED = ["dcgan", "cgan", "stylegan", "aae", "cyclegan", "broken", "ghost"]


def _modules(seed: int = 0) -> dict[str, Any]:
    """Tiny torch modules, one per role, with the contract's input names and shapes."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(seed)

    class Generator(nn.Module):  # z [B, 8] -> image [B, C, 8, 8]
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.channels = channels
            self.fc = nn.Linear(LATENT, channels * SIZE * SIZE)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.fc(z)).view(-1, self.channels, SIZE, SIZE)

    class CondGenerator(nn.Module):  # z, label int64 [B] -> image
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(LATENT, 3 * SIZE * SIZE)
            self.emb = nn.Embedding(len(CLASSES), 3 * SIZE * SIZE)

        def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.fc(z) + 2 * self.emb(label)).view(-1, 3, SIZE, SIZE)

    class Mapping(nn.Module):  # z, psi [] -> w [B, L, W], truncated towards w_avg
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(LATENT, LAYERS * WDIM)
            self.register_buffer("w_avg", torch.randn(LAYERS, WDIM))

        def forward(self, z: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
            w = self.fc(z).view(-1, LAYERS, WDIM)
            return self.w_avg + psi * (w - self.w_avg)

    class Synthesis(nn.Module):  # w [B, L, W], noise [B, K] -> image [B, 3, 8, 8]
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(LAYERS * WDIM, 3 * SIZE * SIZE)
            self.noise = nn.Linear(NOISE, 3 * SIZE * SIZE)

        def forward(self, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.fc(w.flatten(1)) + 0.3 * self.noise(noise)).view(-1, 3, SIZE, SIZE)

    class StyleGenerator(nn.Module):
        """Graph input order differs from the draw order on purpose: serving must go by name."""

        def __init__(self, mapping: Mapping, synthesis: Synthesis) -> None:
            super().__init__()
            self.mapping, self.synthesis = mapping, synthesis

        def forward(self, z, psi, noise, z2, crossover):  # noqa: ANN001, ANN201
            w1, w2 = self.mapping(z, psi), self.mapping(z2, psi)
            layer = torch.arange(LAYERS).view(1, LAYERS, 1)
            take2 = (layer >= crossover) & (crossover >= 0)
            return self.synthesis(torch.where(take2, w2, w1), noise)

    class Encoder(nn.Module):  # image [B, 1, 8, 8] -> code [B, 8]
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(SIZE * SIZE, LATENT)

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.fc(image.flatten(1))

    class Translate(nn.Module):
        """image -> scale * image; the pool/upsample term breaks unless H, W are multiples of 4."""

        def __init__(self, scale: float) -> None:
            super().__init__()
            self.scale = scale

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            coarse = F.interpolate(F.avg_pool2d(image, 4), scale_factor=4.0, mode="nearest")
            return self.scale * image + 0.0 * coarse

    mapping, synthesis = Mapping(), Synthesis()
    return {
        "dcgan": {"generator": Generator(1)},
        "cgan": {"generator": CondGenerator()},
        "stylegan": {"generator": StyleGenerator(mapping, synthesis), "mapping": mapping, "synthesis": synthesis},
        "aae": {"encoder": Encoder(), "generator": Generator(1)},
        "cyclegan": {"a2b": Translate(-1.0), "b2a": Translate(0.5)},
    }


def _example_inputs(model: str, role: str) -> dict[str, Any]:
    import torch

    b = 2
    z = torch.randn(b, LATENT)
    if role == "generator" and model == "cgan":
        return {"z": z, "label": torch.tensor([0, 2])}
    if role == "generator" and model == "stylegan":
        return {
            "z": z,
            "psi": torch.tensor(1.0),
            "noise": torch.randn(b, NOISE),
            "z2": torch.randn(b, LATENT),
            "crossover": torch.tensor(2),
        }
    if role == "generator":
        return {"z": z}
    if role == "mapping":
        return {"z": z, "psi": torch.tensor(1.0)}
    if role == "synthesis":
        return {"w": torch.randn(b, LAYERS, WDIM), "noise": torch.randn(b, NOISE)}
    if role == "encoder":
        return {"image": torch.rand(b, 1, SIZE, SIZE) * 2 - 1}
    return {"image": torch.rand(b, 3, 8, 12) * 2 - 1}  # a2b / b2a


def _export(module: Any, inputs: dict[str, Any], output: str, path: Path, spatial: bool) -> None:
    import torch

    dynamic = {name: {0: "batch"} for name, t in inputs.items() if t.dim() > 0}
    dynamic[output] = {0: "batch"}
    if spatial:
        dynamic["image"] = {0: "batch", 2: "height", 3: "width"}
        dynamic[output] = {0: "batch", 2: "height", 3: "width"}
    module.eval()
    with torch.no_grad():
        torch.onnx.export(
            module,
            tuple(inputs.values()),
            str(path),
            input_names=list(inputs),
            output_names=[output],
            dynamic_axes=dynamic,
            dynamo=False,
        )


_OUTPUT = {
    "generator": "image",
    "mapping": "w",
    "synthesis": "image",
    "encoder": "code",
    "a2b": "image",
    "b2a": "image",
}
_CARD = {
    "dcgan": {"variant": "dcgan", "task": "generate", "channels": 1},
    "cgan": {"variant": "cgan", "task": "generate", "channels": 3, "num_classes": 3, "classes": CLASSES},
    "stylegan": {"variant": "stylegan", "task": "generate", "channels": 3},
    "aae": {"variant": "aae", "task": "reconstruct", "channels": 1},
    "cyclegan": {"variant": "cyclegan", "task": "translate", "channels": 3, "domains": "apple,orange"},
}


def write_artifact(dest: Path, model: str, name: str | None = None, seed: int = 0) -> Path:
    """Export ``model``'s tiny graphs to ``dest`` with a card.json as training's export writes it."""
    import warnings

    dest.mkdir(parents=True, exist_ok=True)
    graphs: dict[str, Any] = {}
    digest = hashlib.sha256()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation/tracer warnings
        for role, module in _modules(seed)[model].items():
            inputs = _example_inputs(model, role)
            path = dest / f"{role}.onnx"
            _export(module, inputs, _OUTPUT[role], path, spatial=role in ("a2b", "b2a"))
            data = path.read_bytes()
            digest.update(data)
            graphs[role] = {
                "file": path.name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "inputs": list(inputs),
                "outputs": [_OUTPUT[role]],
            }
    card = {
        "name": name or model,
        "latent_dim": LATENT,
        "num_classes": 0,
        "classes": [],
        "image_size": SIZE,
        "value_range": "-1,1",
        "domains": None,  # null on purpose: BentoML metadata rejects None, import must cope
        "dataset": "tiny",
        "steps": 1,
        "git_commit": "test",
        "sha256": digest.hexdigest(),
        "metrics": {"fid": 12.5},
        "train_command": "none",
        "wall_time_s": 0.1,
        "created": "2026-01-01T00:00:00+00:00",
        **_CARD[model],
        "graphs": graphs,
    }
    if model == "stylegan":
        card["num_layers"] = LAYERS
    (dest / "card.json").write_text(json.dumps(card, indent=2))
    (dest / "card.md").write_text(f"# {card['name']}\n")
    return dest


@dataclass
class ServingArtifacts:
    root: Path
    dirs: dict[str, Path]  # store name -> artifact directory


@pytest.fixture(scope="session")
def serving_artifacts(tmp_path_factory: pytest.TempPathFactory) -> ServingArtifacts:
    """Artifact directories for every role, plus a second dcgan version and broken ones."""
    root = tmp_path_factory.mktemp("artifacts")
    dirs = {m: write_artifact(root / m, m) for m in _CARD}
    dirs["dcgan-v2"] = write_artifact(root / "dcgan-v2", "dcgan", name="dcgan", seed=1)
    dirs["hidden"] = write_artifact(root / "hidden", "dcgan", name="hidden", seed=2)
    broken = write_artifact(root / "broken", "dcgan", name="broken", seed=3)
    (broken / "generator.onnx").write_bytes(b"this is not an onnx model")
    card = json.loads((broken / "card.json").read_text())  # a card true to its bad graph: import takes it
    card["graphs"]["generator"]["sha256"] = hashlib.sha256(b"this is not an onnx model").hexdigest()
    (broken / "card.json").write_text(json.dumps(card, indent=2))
    dirs["broken"] = broken
    return ServingArtifacts(root, dirs)


@dataclass
class ServingServer:
    url: str
    home: Path
    log: Path
    artifacts: ServingArtifacts
    tags: dict[str, str]  # artifact key -> tag imported
    stored: dict[str, str]  # store_snapshot(home) before the server started

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def store_now(self) -> dict[str, str]:
        return store_snapshot(self.home)


def store_snapshot(home: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file in a BentoML home's model store."""
    base = home / "models"
    return {
        str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(base.rglob("*"))
        if p.is_file()
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ghost_model(home: Path) -> str:
    """A ganzoo model whose card names a graph file that is not there (written by hand)."""
    import bentoml

    from serving.store import model_store

    card = {
        "name": "ghost",
        "variant": "dcgan",
        "task": "generate",
        "sha256": "0" * 64,
        "graphs": {"generator": {"file": "generator.onnx"}},
    }
    with bentoml.models.create(
        "ghost",
        labels={"ganzoo": "true", "task": "generate", "variant": "dcgan"},
        metadata=card,
        _model_store=model_store(home),
    ) as m:
        (Path(m.path) / "card.json").write_text(json.dumps(card))
    return str(m.tag)


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a test server over the store in ``home`` (a BENTOML_HOME)."""
    return {
        **os.environ,
        "BENTOML_HOME": str(home),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / "cache"),
        "BENTOML_DO_NOT_TRACK": "True",
        "PYTHONPATH": str(REPO),
        "GANZOO_ORT_THREADS": "1",
        **extra,
    }


@contextlib.contextmanager
def bentoml_server(home: Path, extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, Path]]:
    """A real ``bentoml serve serving.service:Ganzoo`` on 127.0.0.1 over the store in ``home``.

    Yields (url, log path) once ``/readyz`` answers 200; stops the whole process group after.
    """
    import httpx

    port = _free_port()
    log = home / "server.log"
    env = server_env(home, GANZOO_DEVICE="auto", **(extra_env or {}))
    cmd = [sys.executable, "-m", "bentoml", "serve", "serving.service:Ganzoo", "--port", str(port),
           "--host", "127.0.0.1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"bentoml serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"bentoml serve not ready within 120 s:\n{log.read_text()[-4000:]}")
            try:  # wait a little, but wake at once if the server dies
                proc.wait(timeout=0.25)
            except subprocess.TimeoutExpired:
                pass
        yield url, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture(scope="session")
def serving_server(
    serving_artifacts: ServingArtifacts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServingServer]:
    """The service on tiny models of every role, in a temporary home."""
    from serving.import_models import import_artifact

    home = tmp_path_factory.mktemp("bentoml_home")
    tags = {key: import_artifact(d, home=home) for key, d in serving_artifacts.dirs.items()}
    tags["ghost"] = _ghost_model(home)
    snapshot = store_snapshot(home)
    env = {
        "GANZOO_MODELS": ",".join(SERVED),
        "GANZOO_MAX_PIXELS": "1000000",
        "GANZOO_MAX_BYTES": "3000000",
        # Functional tests share this server; admission has its own servers with small limits
        # (test_serving_engine.py's `limited`, test_serving_admission.py). With the default 2 s,
        # Little's law refused part of a 48-request burst when CI's warm-up requests ran slow
        # (rate learned at concurrency 1 while batching serves a burst faster), so the default
        # limit made a batching test depend on the machine's speed.
        "GANZOO_MAX_WAIT_S": "20",
    }
    with bentoml_server(home, env) as (url, log):
        yield ServingServer(url, home, log, serving_artifacts, tags, snapshot)


def wait_until_answers(url: str, path: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Poll ``url + path`` until it answers 200; fail showing the log if ``proc`` exits or time runs out."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        try:  # wait a little, but wake at once if the server dies
            proc.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            pass
