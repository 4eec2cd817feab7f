"""The one training loop every variant shares (stylegan2-ada style: one readable function).

The variant brings networks and its ``train_step``; this loop brings data, optimisers, the
adversarial loss, image pools, differentiable augmentation, EMA, checkpoint/resume, sample
grids, scalars, keep-best evaluation and multi-process training.
"""

from __future__ import annotations

import csv
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training import augment, distributed
from training.config import TrainConfig, save_config
from training.data import BatchSampler, ImageData, UnpairedData, download_dataset, load_dataset
from training.device import DeviceError, resolve_device, resolve_precision, to_device
from training.ema import EMA, recalibrate_batchnorm
from training.image_pool import ImagePool
from training.losses import AdversarialLoss, penalty_scaler
from training.warmstart import init_from_artifact, provenance
from zoo import registry
from zoo.spec import DataInfo, StepContext, Variant

log = logging.getLogger("ganzoo.train")


# -- pieces the loop and export share ------------------------------------------------------
def data_info(data: ImageData | UnpairedData) -> DataInfo:
    domains = getattr(data, "domains", ())
    classes = tuple(str(c) for c in getattr(data, "classes", None) or ())
    return DataInfo(channels=data.channels, num_classes=data.num_classes, name=data.name, domains=tuple(domains),
                    classes=classes)


def variant_config(cls: type[Variant], params: dict[str, Any]) -> Any:
    """``cls.Config(**params)``; an unknown key is named beside the valid ones."""
    unknown = sorted(set(params) - set(cls.Config.model_fields))
    if unknown:
        raise ValueError(f"{cls.name} has no hyperparameter {', '.join(map(repr, unknown))}; valid --model keys: "
                         f"{', '.join(cls.Config.model_fields)}")
    return cls.Config(**params)


def make_variant(cfg: TrainConfig, info: DataInfo) -> Variant:
    cls = registry.get_variant(cfg.variant)
    params = dict(cfg.model)
    if cfg.image_size is not None:
        params["image_size"] = cfg.image_size
    return cls(variant_config(cls, params), info)


def resume_config(cfg: TrainConfig, state: dict[str, Any]) -> TrainConfig:
    """``cfg`` with the checkpoint's variant config; a variant or ``--model`` value that
    contradicts the checkpoint is refused (the networks could not load its weights)."""
    saved = state.get("variant_config") or {}
    was = (state.get("config") or {}).get("variant")
    if was and was != cfg.variant:
        raise ValueError(f"{cfg.out} holds a {was!r} run; it cannot be resumed as {cfg.variant!r}")
    asked = {**cfg.model, **({"image_size": cfg.image_size} if cfg.image_size is not None else {})}
    clash = [f"{k}={v!r} (checkpoint: {saved.get(k)!r})" for k, v in asked.items() if k in saved and saved[k] != v]
    clash += [f"{k}={v!r} (not a hyperparameter of the checkpoint)" for k, v in asked.items() if k not in saved]
    if clash:
        raise ValueError("--resume takes the variant config from the checkpoint; drop the conflicting --model "
                         f"value(s): {', '.join(clash)}")
    return cfg.model_copy(update={"model": dict(saved), "image_size": None})


def make_optimizers(variant: Variant, nets: dict[str, torch.nn.Module], cfg: TrainConfig,
                    scaler: torch.amp.GradScaler | None = None) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for group, names in variant.optimizer_groups.items():
        params = [p for n in names for p in nets[n].parameters()]
        lr = cfg.lr_d if group.startswith("D") else cfg.lr_g
        opt = torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2))
        opts[group] = distributed.AveragedOptimizer(opt, scaler)
    return opts


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """Every RNG a step draws from; on CUDA also the device's (noise drawn there comes from it)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Restore :func:`rng_state`; a CUDA state is restored only when resuming on CUDA."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if device is not None and device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    from torchvision.utils import save_image

    save_image(images.detach().clamp(-1, 1) * 0.5 + 0.5, path, nrow=nrow, padding=2)


class ScalarLog:
    """Scalars to ``metrics.csv`` and, when tensorboard is installed, to event files."""

    def __init__(self, out: Path) -> None:
        self.path = out / "metrics.csv"
        self.rows: list[dict[str, Any]] = []
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tb"))
        except Exception:  # tensorboard is optional
            self.tb = None

    def write(self, step: int, scalars: dict[str, float]) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as fh:
            w = csv.writer(fh)
            if new:
                w.writerow(["step", "name", "value"])
            for k, v in scalars.items():
                w.writerow([step, k, f"{v:.6g}"])
                if self.tb is not None:
                    self.tb.add_scalar(k, v, step)

    def image(self, step: int, grid: torch.Tensor, nrow: int = 8) -> None:
        """The preview grid as a TensorBoard image summary ("samples"), as samples/ holds it."""
        if self.tb is not None:
            from torchvision.utils import make_grid

            self.tb.add_image("samples", make_grid(grid.detach().clamp(-1, 1).cpu() * 0.5 + 0.5, nrow=nrow,
                                                   padding=2), step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def lr_factor(step: int, total: int, decay_start: int | None) -> float:
    """Constant, then linear decay to zero at ``total`` (CycleGAN's schedule)."""
    if decay_start is None or step < decay_start:
        return 1.0
    return max(0.0, 1.0 - (step - decay_start) / max(1, total - decay_start))


def top_k_fraction(step: int, floor: float, ramp: int) -> float:
    """The share of fakes G's loss keeps at ``step``: 1, falling linearly to ``floor`` over ``ramp`` steps."""
    if ramp <= 0 or step >= ramp:
        return floor
    return 1.0 - (1.0 - floor) * step / ramp


class KeepBestScorer:
    """The cheap keep-best metric (``quick_score``, lower is better) of the EMA generator.

    ``scale`` names the settings it was computed with: a best score recorded on another scale
    (e.g. by a checkpoint from before pooled draws) is not comparable and is re-scored."""

    def __init__(self, variant: Variant, data: ImageData | UnpairedData, cfg: TrainConfig) -> None:
        from training.evaluation.suite import quick_score_id  # imported lazily: evaluation is optional

        self.variant = variant
        self.n = min(len(data), cfg.eval_samples)
        self.draws = max(1, min(cfg.eval_draws, len(data) // self.n))  # small datasets: fewer draws
        # the first draws x n train images, one chunk of n per draw
        self.reference = data.get_batch(torch.arange(self.n * self.draws))["image"]
        self.scale = quick_score_id(self.n, self.draws)

    def __call__(self, nets: dict[str, torch.nn.Module]) -> float:
        from training.evaluation import quick_score

        def sample_fn(n: int, generator: torch.Generator) -> torch.Tensor:
            return self.variant.sample(nets, n, generator).float().cpu()  # the metric and its reference live on the CPU

        return float(quick_score(sample_fn, self.reference, n=self.n, draws=self.draws))


def default_scorer(variant: Variant, data: ImageData | UnpairedData, cfg: TrainConfig) -> KeepBestScorer | None:
    """The keep-best metric when it applies to the task (not translation) and ``eval_every`` is on."""
    if cfg.eval_every <= 0 or variant.task == "translate":
        return None
    return KeepBestScorer(variant, data, cfg)


def rescore_best(best: dict[str, Any], scorer: KeepBestScorer, ckpt_dir: Path) -> dict[str, Any]:
    """A resumed run's best score on ``scorer``'s scale: a best recorded on another scale (no
    ``"scale"``: checkpoints from before pooled draws, or other ``--eval-*`` settings) is
    measured again on ``best.pt``'s weights, so later checkpoints are compared like with like."""
    if best.get("scale") == scorer.scale:
        return best
    path = ckpt_dir / "best.pt"
    if best["step"] < 0 or not path.exists():
        return {"score": math.inf, "step": -1, "scale": scorer.scale}
    state = torch.load(path, map_location="cpu", weights_only=False)
    with torch.random.fork_rng(devices=[]):  # build() draws an init: the resumed run's RNG stream stays as saved
        nets = scorer.variant.build()
        for k, sd in (state["nets"] | state["ema"]).items():
            nets[k].load_state_dict(sd)
        for m in nets.values():
            m.eval()
        with torch.no_grad():
            score = scorer(nets)
    log.info("best.pt (step %d) re-scored on the keep-best scale %s: %.4f (was %.4f on %s)", state["step"],
             scorer.scale, score, best["score"], best.get("scale", "one_nn:500x1"))
    return {"score": score, "step": int(state["step"]), "scale": scorer.scale}


def default_coverage_check(variant: Variant, data: ImageData | UnpairedData, cfg: TrainConfig) -> Callable | None:
    """Mode-collapse alarm at each evaluation: the suite's classifier histogram of 500 samples.

    Only for datasets the suite has a classifier for; returns a warning line or None."""
    if cfg.eval_every <= 0 or variant.task == "translate" or cfg.data not in ("mnist", "fashion_mnist"):
        return None
    from training.evaluation import classifier_predict, coverage_warning
    from training.evaluation.metrics import mode_coverage

    def check(nets: dict[str, torch.nn.Module]) -> str | None:
        images = variant.sample(nets, 500, torch.Generator().manual_seed(cfg.seed + 99)).float().cpu()
        probs = classifier_predict(cfg.data, cfg.data_root, images)
        return coverage_warning(mode_coverage(probs, data.num_classes), data.num_classes)

    return check


# -- the loop ------------------------------------------------------------------------------
def train(cfg: TrainConfig, progress: bool = True, command: str | None = None) -> dict[str, Any]:
    """Train ``cfg.variant`` and return a summary; ``cfg.resume`` continues ``out/checkpoints/latest.pt``."""
    out = Path(cfg.out)
    if (out / "checkpoints" / "latest.pt").exists() and not cfg.resume:
        raise ValueError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    # the device and precision are checked before anything is written: a wrong request is one clear error
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    # a resumed run is read before anything in its folder is written
    resumed = None
    if cfg.resume and (out / "checkpoints" / "latest.pt").exists():
        resumed = torch.load(out / "checkpoints" / "latest.pt", map_location="cpu", weights_only=False)
        cfg = resume_config(cfg, resumed)
    rank, world = distributed.init(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ckpt_dir = out / "checkpoints"

    # data, variant and networks: init is seeded alike on every rank, noise differs per rank
    variant_cls = registry.get_variant(cfg.variant)
    image_size = cfg.image_size or int(cfg.model.get("image_size", variant_cls.Config().image_size))
    if cfg.download and rank == 0:
        download_dataset(cfg.data, cfg.data_root or "data")
    data = load_dataset(cfg.data, cfg.data_root or ("data" if cfg.download else None), "train", image_size=image_size)
    info = data_info(data)
    variant = make_variant(cfg, info)
    torch.manual_seed(cfg.seed)
    nets = variant.build()  # initialised on the CPU: the same init anywhere
    # what made the starting weights, kept in every checkpoint so an export's card reaches back to the data
    init: dict[str, Any] | None = resumed.get("init") if resumed is not None else None
    if cfg.init_from and resumed is None:  # a resumed run's checkpoint holds every net already
        for line in init_from_artifact(variant, nets, cfg.init_from):
            log.info("--init-from %s: %s", cfg.init_from, line)
        init = provenance(cfg.init_from)
    nets = {k: m.to(device) for k, m in nets.items()}
    distributed.broadcast_modules(nets)
    scaler = precision.grad_scaler()  # fp16 only
    opts = make_optimizers(variant, nets, cfg, scaler)
    # taken before a checkpoint restores the decayed rates, so a resumed run follows cfg's schedule
    base_lrs = {k: [g["lr"] for g in o.param_groups] for k, o in opts.items()}
    loss = AdversarialLoss(cfg.loss, cfg.gp_weight, cfg.r1_weight, cfg.top_k)
    pools: dict[str, ImagePool] = {}
    pipe = augment.from_config(cfg)  # None unless --augment
    # what train_step sees: discriminators wrapped to augment their image input; ``nets`` stays
    # unwrapped for optimisers, EMA, checkpoints, previews, evaluation and export
    step_nets = augment.wrap(nets, variant.optimizer_groups, pipe)
    ema = EMA({k: nets[k] for k in variant.ema_modules}, cfg.ema_decay, cfg.ema_warmup)
    sampler = BatchSampler(len(data), cfg.batch_size, cfg.seed, rank, world)
    scorer = default_scorer(variant, data, cfg)
    coverage_check = default_coverage_check(variant, data, cfg)

    # fixed inputs for the sample grid, drawn from their own generator and data order, before
    # the noise seed is set or a checkpoint restores it, so resumed runs see the same RNG stream
    preview_gen = torch.Generator().manual_seed(cfg.seed + 12345)
    preview_sampler = BatchSampler(len(data), min(cfg.batch_size, 8), cfg.seed + 777)
    preview_batches: Iterator[dict] = (data.get_batch(preview_sampler.indices(i)) for i in range(10**9))
    fixed = {k: v.to(device) if isinstance(v, torch.Tensor) else v
             for k, v in variant.preview_inputs(64, preview_gen, preview_batches).items()}

    best: dict[str, Any] = {"score": math.inf, "step": -1, "scale": scorer.scale if scorer is not None else None}
    step, batches_used, wall_before = 0, 0, 0.0
    history: list[str] = []  # the commands of every leg of a resumed run, in order, so it can be reproduced
    torch.manual_seed(cfg.seed * 1000 + rank)
    latest = ckpt_dir / "latest.pt"
    if resumed is not None:
        state = resumed
        for k, sd in state["nets"].items():
            nets[k].load_state_dict(sd)
        for k, sd in state["opts"].items():
            opts[k].load_state_dict(sd)
        ema.load_state_dict(state["ema"])
        for k, sd in state.get("pools", {}).items():
            pools.setdefault(k, ImagePool(cfg.pool_size)).load_state_dict(sd, device)
        if pipe is not None and state.get("augment"):
            aug = state["augment"]
            pipe.load_state_dict(aug[rank] if rank < len(aug) else aug[0])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        step, batches_used, best = state["step"], state["batches_used"], state["best"]
        wall_before = float(state.get("wall_time_s", 0.0))
        history = list(state.get("commands") or [c for c in [state.get("command")] if c])
        command = command or (history[-1] if history else None)
        set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0], device)
        log.info("resumed from %s at step %d", latest, step)
        if scorer is not None and rank == 0:
            best = rescore_best(best, scorer, ckpt_dir)
    if rank == 0:
        (out / "samples").mkdir(parents=True, exist_ok=True)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")

    def next_batch() -> dict[str, torch.Tensor]:
        nonlocal batches_used
        batch = to_device(data.get_batch(sampler.indices(batches_used)), device)
        batches_used += 1
        return batch

    def replay(name: str, fakes: torch.Tensor) -> torch.Tensor:
        if cfg.pool_size <= 0:
            return fakes
        return pools.setdefault(name, ImagePool(cfg.pool_size)).query(fakes)

    def averaged() -> dict[str, torch.nn.Module]:
        """The nets with EMA weights where there are any, their BatchNorm statistics re-measured."""
        merged = nets | ema.copies
        bn_gen = torch.Generator().manual_seed(cfg.seed + 4242)  # the same inputs each time
        recalibrate_batchnorm(ema.copies, lambda: variant.sample(merged, cfg.batch_size, bn_gen))
        return merged

    def checkpoint(path: Path) -> None:
        averaged()  # the EMA copies are saved (and exported) with statistics of their own
        rngs: list[Any] = [rng_state(device)]
        augs: list[Any] = [pipe.state_dict()] if pipe is not None else []
        if world > 1:
            rngs = [None] * world
            torch.distributed.all_gather_object(rngs, rng_state(device))
            if pipe is not None:  # the same on every rank: all of them gather, or none
                augs = [None] * world
                torch.distributed.all_gather_object(augs, pipe.state_dict())
        if rank != 0:
            return
        save_atomic(
            {
                "step": step,
                "batches_used": batches_used,
                "best": best,
                "nets": {k: m.state_dict() for k, m in nets.items()},
                "opts": {k: o.state_dict() for k, o in opts.items()},
                "ema": ema.state_dict(),
                "pools": {k: p.state_dict() for k, p in pools.items()},
                "augment": augs,  # per rank: p and the ADA state (empty without --augment)
                "scaler": scaler.state_dict() if scaler is not None else None,
                "device": str(device),
                "precision": precision.name,
                "rng": rngs,
                "config": cfg.model_dump(mode="json"),
                "variant_config": variant.config.model_dump(mode="json"),
                "data_info": info.__dict__,
                "command": command,
                "commands": history + [command] if command and history[-1:] != [command] else history,
                "init": init,
                "wall_time_s": wall_before + time.perf_counter() - t0,
            },
            path,
        )

    scalars = ScalarLog(out) if rank == 0 else None
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc=cfg.variant, dynamic_ncols=True)

    def scale(loss_value: torch.Tensor) -> torch.Tensor:
        """fp16: the loss times the scaler's factor (gradients that would flush to zero in fp16 do not)."""
        nonlocal scaled
        scaled = True
        return scaler.scale(loss_value) if scaler is not None else loss_value

    scaled = False

    def run_step(ctx: StepContext) -> dict[str, float]:
        try:
            return variant.train_step(ctx)
        except (AssertionError, RuntimeError) as exc:
            if scaler is not None and not scaled:  # GradScaler.step() on gradients nobody scaled
                raise DeviceError(f"--precision fp16: {cfg.variant}'s train_step calls backward() on losses "
                                  "it did not pass through ctx.scale(loss); use --precision bf16") from exc
            raise

    fetch = pipe.watch(next_batch) if pipe is not None else next_batch  # ADA tells reals by identity
    start_step, t0 = step, time.perf_counter()
    for m in nets.values():
        m.train()
    while step < cfg.steps:
        factor = lr_factor(step, cfg.steps, cfg.lr_decay_start)
        for k, o in opts.items():
            held = step < cfg.d_warmup and not k.startswith("D")  # --d-warmup: only D* groups learn
            for g, lr in zip(o.param_groups, base_lrs[k], strict=True):
                g["lr"] = 0.0 if held else lr * factor
        loss.top_k = top_k_fraction(step, cfg.top_k, cfg.top_k_ramp)
        ctx = StepContext(step_nets, opts, loss, step, cfg.d_steps, fetch, replay, device, scale)
        with precision.autocast(), penalty_scaler(scaler):
            logs = run_step(ctx)
        if cfg.top_k < 1:
            logs["top_k"] = loss.top_k
        if pipe is not None:
            pipe.end_step()  # ADA: every few steps, p follows E[sign(D(real))]
        ema.update({k: nets[k] for k in variant.ema_modules}, step)
        step += 1

        if any(not math.isfinite(v) for v in logs.values()):
            log.warning("step %d: a loss diverged (%s); the run is unlikely to recover", step, logs)
        if rank == 0 and (step % cfg.log_every == 0 or step == cfg.steps):
            elapsed = time.perf_counter() - t0
            aug_scalars = pipe.scalars() if pipe is not None else {}  # aug_p, ada_rt
            scalars.write(step, {**logs, **aug_scalars, "it_per_s": (step - start_step) / max(elapsed, 1e-9),
                                 "lr_factor": factor})
        if bar is not None:
            bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items()}, refresh=False)
            bar.update(1)
        if rank == 0 and (step % cfg.sample_every == 0 or step == cfg.steps):
            with torch.no_grad():
                grid = variant.preview(averaged(), fixed)
                save_grid(grid, out / "samples" / f"step_{step:06d}.png")
                scalars.image(step, grid)
        if scorer is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            if rank == 0:
                eval_nets = averaged()
                with torch.no_grad():
                    score = scorer(eval_nets)
                scalars.write(step, {"eval_score": score})
                warning = coverage_check(eval_nets) if coverage_check is not None else None
                if warning:
                    log.warning("step %d: possible mode collapse: %s", step, warning)
                if score < best["score"]:
                    best = {"score": score, "step": step, "scale": scorer.scale}
            if world > 1:
                box = [best]
                torch.distributed.broadcast_object_list(box, 0)
                best = box[0]
            if best["step"] == step:
                checkpoint(ckpt_dir / "best.pt")
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            checkpoint(latest)
    for m in nets.values():
        m.eval()
    wall = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    if scalars is not None:
        scalars.close()
    distributed.shutdown()
    return {"steps": step, "wall_time_s": wall_before + wall, "steps_this_run": step - start_step, "best": best,
            "out": str(out)}
