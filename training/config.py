"""Training configuration: one pydantic model, loadable from YAML/JSON, overridable by flags.

The resolved config is written to the run folder and into every checkpoint, so a run can
always be reproduced and resumed from what it wrote itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from training.device import DEVICE_PATTERN
from training.losses import LOSSES

LossName = Literal[LOSSES]  # type: ignore[valid-type]


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: str = Field(description="registered variant name (python -m zoo list)")
    data: str = Field("mnist", description="dataset: mnist, fashion_mnist, cifar10, olivetti, digits, folder, unpaired")
    data_root: str | None = Field(None, description="dataset folder, e.g. ../shared/data/mnist (digits needs none)")
    download: bool = Field(False, description="fetch mnist, fashion_mnist or cifar10 into --data-root with "
                           "torchvision's downloaders when missing (needs the internet)")
    out: str = Field("runs/default", description="run folder: checkpoints, samples, logs, resolved config")
    steps: int = Field(3000, ge=1, description="generator steps to train for")
    batch_size: int = Field(64, ge=1, description="images per process per step")
    lr_g: float = Field(2e-4, gt=0, description="Adam learning rate of every optimiser group except D")
    lr_d: float = Field(2e-4, gt=0, description="Adam learning rate of the discriminator group(s) D*")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam beta1")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2")
    d_steps: int = Field(1, ge=1, description="k: discriminator steps per generator step")
    loss: LossName = Field("nonsaturating", description="adversarial loss: " + ", ".join(LOSSES))
    gp_weight: float = Field(10.0, ge=0, description="gradient-penalty weight (wgan-gp only)")
    r1_weight: float = Field(0.0, ge=0, description="R1 penalty weight on real images (0 = off)")
    top_k: float = Field(1.0, gt=0, le=1, description="Sinha et al. 2020: G's loss keeps only this fraction of "
                         "its fakes, those D scores most real (1 = all)")
    top_k_ramp: int = Field(0, ge=0, description="steps over which the kept fraction falls linearly from 1 to "
                            "--top-k (0 = --top-k from the start)")
    pool_size: int = Field(0, ge=0, description="image pool of past fakes per discriminator (0 = off)")
    augment: str = Field("", description="DiffAugment policies for every image a discriminator sees (reals and "
                         "fakes, G step too), comma-separated: color, translation, cutout (empty = off)")
    augment_p: float | None = Field(None, ge=0, le=1, description="probability of each policy per sample "
                                    "(default 1.0; with --ada-target the starting value, default 0)")
    ada_target: float = Field(0.0, ge=0, lt=1, description="StyleGAN2-ADA: adapt the probability so that "
                              "E[sign(D(real))] stays at this value, e.g. 0.6 (0 = off; needs --augment)")
    ada_kimg: float = Field(500.0, gt=0, description="ADA speed: thousands of real images for the probability "
                            "to move from 0 to 1")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="decay of the EMA copy of the generator(s)")
    ema_warmup: bool = Field(True, description="EMA decay min(decay, (1+t)/(10+t)): early copies forget the init")
    lr_decay_start: int | None = Field(None, ge=0, description="step after which LR decays linearly to 0")
    ckpt_every: int = Field(500, ge=1, description="write checkpoints/latest.pt every N steps")
    sample_every: int = Field(500, ge=1, description="write samples/step_N.png every N steps")
    log_every: int = Field(25, ge=1, description="write scalars every N steps")
    eval_every: int = Field(0, ge=0, description="cheap metric every N steps, keep best.pt (0 = off)")
    eval_samples: int = Field(500, ge=50, description="samples per draw of the cheap metric (and reference images)")
    eval_draws: int = Field(16, ge=1, description="independent draws pooled by the cheap metric, each against its "
                            "own reference images (16: std 0.002-0.004, docs/METRICS.md)")
    init_from: str | None = Field(None, description="artifact directory (card.json + ONNX graphs) whose weights "
                                  "start the networks it was exported from, e.g. serving/pretrained/stylegan: "
                                  "fine-tuning with a fresh D (training/warmstart.py); a new run only")
    d_warmup: int = Field(0, ge=0, description="steps at the start in which only the discriminator groups D* "
                          "learn (the others' LR is 0): with --init-from, a fresh D catches up with a trained G")
    resume: bool = Field(False, description="continue from out/checkpoints/latest.pt (required if it exists)")
    seed: int = Field(0, description="seeds init, data order and noise; a run is reproducible on the CPU")
    device: str = Field("auto", pattern=DEVICE_PATTERN,
                        description="auto (CUDA when available), cpu, cuda or cuda:N; torchrun: cuda:LOCAL_RANK")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="fp32, or autocast: bf16 (CPU and CUDA), fp16 (CUDA, with loss scaling)")
    threads: int | None = Field(None, ge=1, description="torch intra-op threads (default: torch's)")
    image_size: int | None = Field(None, description="shortcut for model.image_size")
    model: dict[str, Any] = Field(default_factory=dict, description="variant hyperparameters (its Config)")

    @field_validator("augment", mode="before")
    @classmethod
    def _policies(cls, value: Any) -> str:
        """``None`` (an empty flag) is off, a list is joined; the names are checked here, before a run starts."""
        from training.augment import parse_policies

        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        return ",".join(parse_policies(value))

    @model_validator(mode="after")
    def _ada_needs_augment(self) -> TrainConfig:
        if self.ada_target > 0 and not self.augment:
            raise ValueError("--ada-target adapts the augmentation probability: it needs --augment")
        return self


def load_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must hold a mapping, not {type(data).__name__}")
    return data


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
