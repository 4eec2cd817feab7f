"""Exported artifacts (docs/ARTIFACTS.md) as the callables the suite measures.

The suite must measure what is shipped, so it runs the ONNX graphs with ONNX Runtime, not the
PyTorch checkpoint. Random inputs (``z*``, ``noise*``) are standard normals drawn from the
caller's ``torch.Generator``; ``label`` is uniform over the classes unless given; ``psi`` is
1.0 and ``crossover`` -1 (no truncation, no style mixing: the model's own distribution).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from serving.rejection import Rule, rejection_sample
from serving.sampling import draw_order

_Z = re.compile(r"^z\d*$")
_NOISE = re.compile(r"^noise\w*$")


class OnnxArtifact:
    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.path = Path(path)
        card_path = self.path / "card.json"
        if not card_path.exists():
            raise FileNotFoundError(f"{card_path} not found: not an artifact directory")
        self.card: dict[str, Any] = json.loads(card_path.read_text())
        self.threads = threads
        self._sessions: dict[str, Any] = {}

    # -- card ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.card.get("name") or self.path.name)

    @property
    def task(self) -> str:
        return str(self.card.get("task") or "generate")

    @property
    def latent_dim(self) -> int:
        return int(self.card.get("latent_dim") or 0)

    @property
    def num_classes(self) -> int:
        return int(self.card.get("num_classes") or 0)

    @property
    def image_size(self) -> int:
        return int(self.card.get("image_size") or 32)

    def graph_file(self, role: str) -> Path:
        info = (self.card.get("graphs") or {}).get(role) or {}
        return self.path / str(info.get("file") or f"{role}.onnx")

    def has(self, role: str) -> bool:
        return self.graph_file(role).exists()

    def session(self, role: str) -> Any:
        if role not in self._sessions:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            path = self.graph_file(role)
            if not path.exists():
                raise FileNotFoundError(f"{self.name}: no {role} graph ({path})")
            self._sessions[role] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return self._sessions[role]

    @property
    def conditional(self) -> bool:
        return self.has("generator") and any(i.name == "label" for i in self.session("generator").get_inputs())

    # -- generation ------------------------------------------------------------------------
    def _feed(self, n: int, g: torch.Generator, labels: torch.Tensor | None) -> dict[str, np.ndarray]:
        inputs = self.session("generator").get_inputs()
        names = [i.name for i in inputs]
        zs = [x for x in names if _Z.match(x)]
        order = [x for x in zs if x == "z"] + [x for x in zs if x != "z"] + [x for x in names if _NOISE.match(x)]
        spec = {i.name: i for i in inputs}
        feed: dict[str, np.ndarray] = {}
        for name in order:  # the contract's draw order: z, other z*, noise*
            dims = [d if isinstance(d, int) else None for d in spec[name].shape[1:]]
            if any(d is None for d in dims):
                dims = [self.latent_dim]
            feed[name] = torch.randn(n, *dims, generator=g).numpy()
        for name in names:
            if name in feed:
                continue
            if name == "label":
                if labels is None:
                    labels = torch.randint(max(self.num_classes, 1), (n,), generator=g)
                feed[name] = labels.to(torch.int64).numpy()
            elif name == "psi":
                feed[name] = np.array(1.0, dtype=np.float32)
            elif name == "crossover":
                feed[name] = np.array(-1, dtype=np.int64)
            else:
                raise ValueError(f"{self.name}: generator input {name!r} is not in the artifact contract")
        return feed

    @property
    def rule(self) -> Rule | None:
        """The card's rejection rule, where it ships a critic (serving/rejection.py)."""
        entry = self.card.get("rejection")
        return Rule.from_card(entry) if entry and self.has("critic") else None

    def sample(self, n: int, generator: torch.Generator, filtered: bool | None = None) -> torch.Tensor:
        """``n`` images in [-1, 1] (the suite's ``sample_fn``): what ``/generate`` serves, so
        through the critic's rejection rule where the card has one (``filtered=None``), drawn
        as serving draws them, from one seed taken from ``generator``. ``filtered=False``: the
        generator's own distribution, latents drawn from ``generator``."""
        rule = self.rule if filtered is not False else None
        if filtered and rule is None:
            raise ValueError(f"{self.name}: no critic and rejection rule to filter with")
        gen = self.session("generator")
        if rule is None:
            return torch.from_numpy(gen.run(None, self._feed(n, generator, None))[0])
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        specs = self.random_specs()
        controls = {k: v for k, v in self._feed(1, torch.Generator().manual_seed(0), None).items()
                    if k in ("psi", "crossover")}
        critic = self.session("critic")
        cname = critic.get_inputs()[0].name
        res = rejection_sample(
            [seed] * n, range(n), specs, rule,
            sample=lambda draws: gen.run(None, {**draws, **controls})[0],
            score=lambda x: critic.run(None, {cname: x})[0],
        )
        self.last_candidates = res.candidates
        return torch.from_numpy(res.images)

    def random_specs(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, per-tile shape) of the generator's random inputs, in the contract's draw order."""
        spec = {i.name: i for i in self.session("generator").get_inputs()}
        out = []
        for name in draw_order(spec):
            dims = [d if isinstance(d, int) else None for d in spec[name].shape[1:]]
            out.append((name, tuple(dims) if None not in dims else (self.latent_dim,)))
        return out

    def sample_labels(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One image per requested label (the suite's ``label_fn``)."""
        feed = self._feed(len(labels), generator, labels)
        return torch.from_numpy(self.session("generator").run(None, feed)[0])

    # -- single-input graphs (fed by position) ---------------------------------------------
    def run_single(self, role: str, x: torch.Tensor) -> torch.Tensor:
        sess = self.session(role)
        name = sess.get_inputs()[0].name
        return torch.from_numpy(sess.run(None, {name: x.detach().float().numpy()})[0])

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.run_single("encoder", images)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        feed = self._feed(len(codes), g, None)
        feed["z"] = codes.detach().float().numpy()
        return torch.from_numpy(self.session("generator").run(None, feed)[0])

    def a2b(self, images: torch.Tensor) -> torch.Tensor:
        return self.run_single("a2b", images)

    def b2a(self, images: torch.Tensor) -> torch.Tensor:
        return self.run_single("b2a", images)
