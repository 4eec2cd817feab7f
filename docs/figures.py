"""``make figures``: the pictures in README.md, docs/RESULTS.md and the model cards.

Rendered from the shipped artifacts in ``serving/pretrained/`` through the Python API
(``serving.load``: ONNX Runtime on the CPU, the service's own sampling), so every image is
what the HTTP API answers for the parameters named here, and the same on every run. The
training curves come from the ``metrics.csv`` an artifact ships (its card's ``curves``). The
translation strips also take two test photos each from ``--data`` (``../shared/data``) beside
the photos shipped in ``examples/photos/``; without ``--data`` they use the shipped ones only.

    python docs/figures.py --data ../shared/data          # writes docs/images/*
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from serving import api, images, runtime  # noqa: E402

OUT = REPO / "docs" / "images"
PRETRAINED = REPO / "serving" / "pretrained"
PHOTOS = REPO / "examples" / "photos"
GRID_MODELS = ("dcgan", "cgan", "cgan-fashion", "stylegan", "aae", "stylegan-faces", "stylegan-cifar10")
STYLEGANS = ("stylegan", "stylegan-faces", "stylegan-cifar10")  # style-mixing grids
TRUNCATED = ("stylegan-faces", "stylegan-cifar10")  # truncation strips
TEST_PHOTOS = {  # two test photos per direction from ../shared/data/apple2orange
    "apple2orange": ["testA/n07740461_10080.jpg", "testA/n07740461_111.jpg"],
    "orange2apple": ["testB/n07749192_2570.jpg", "testB/n07749192_620.jpg"],
}
SHIPPED = {"apple2orange": PHOTOS / "apple.jpg", "orange2apple": PHOTOS / "orange.jpg"}
TRANSLATE_SIZE = runtime.TRANSLATE_SIZE  # /translate's default working size for the 256-px test photos
STRIP_CELL = 192  # px per photo in the strips (keeps each JPEG under MAX_BYTES)
WORK_SIZES = (64, 128, 256)  # the working sizes the size strip compares
MIX_CROSSOVER = 3
MAX_BYTES = 200_000


def zoom(arr: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of HWC by a whole factor (pixels stay crisp)."""
    return arr.repeat(factor, axis=0).repeat(factor, axis=1)


def write(path: Path, data: bytes) -> None:
    if len(data) > MAX_BYTES:
        raise SystemExit(f"{path.name} would be {len(data)} bytes, over the {MAX_BYTES} budget")
    path.write_bytes(data)
    print(f"wrote {path.relative_to(REPO)} ({len(data) // 1024} kB)")


def sample_grids() -> None:
    """64 samples of seed 0 per generating model: GET /generate?model=M&n=64&seed=0, 2x (colour 1x)."""
    for name in GRID_MODELS:
        m = api.load(PRETRAINED / name)
        tiles = m.generate(n=64, seed=0)
        factor = 1 if tiles.shape[-1] == 3 else 2  # a 2x colour grid is over the 200 kB image budget
        write(OUT / f"{name}-grid.png", images.encode_png(zoom(api.grid(tiles), factor)))


def critic_pairs() -> None:
    """What the critic changed in dcgan's seed-0 grid: the first 16 tiles it replaced (top, from
    filter=none) above what /generate serves in their place (bottom), 2x."""
    m = api.load(PRETRAINED / "dcgan")
    served, raw = m.generate(n=256, seed=0), m.generate(n=256, seed=0, filter="none")
    idx = np.flatnonzero((served != raw).any(axis=(1, 2, 3)))[:16]
    both = np.concatenate([raw[idx], served[idx]])
    write(OUT / "dcgan-critic-pairs.png", images.encode_png(zoom(api.grid(both, len(idx)), 2)))


def class_rows(plt) -> None:  # noqa: ANN001
    """One row per class, named: tile i of seed 0 with label c (columns share their z)."""
    for name in ("cgan", "cgan-fashion"):
        m = api.load(PRETRAINED / name)
        rows = np.concatenate([m.generate(n=10, seed=0, label=c) for c in range(len(m.classes))])
        grid = api.grid(rows, 10)[:, :, 0]
        fig, ax = plt.subplots(figsize=(5.6, 5.4), dpi=100)
        ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        step = grid.shape[0] / len(m.classes)
        ax.set_yticks([step * (i + 0.5) for i in range(len(m.classes))], m.classes)
        ax.set_xticks([])
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_title(f"{name}: one row per label=, seed 0", fontsize=9)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
        plt.close(fig)
        write(OUT / f"{name}-classes.png", buf.getvalue())


def strips(data: Path | None) -> None:
    """Input photos above their translations (size=256), one strip per direction, as JPEG."""
    m = api.load(PRETRAINED / "cyclegan")
    for direction, names in TEST_PHOTOS.items():
        files = [SHIPPED[direction]]
        if data is not None:
            files += [data / "apple2orange" / n for n in names]
        cells = []
        for f in files:
            src = cell(np.asarray(Image.open(f).convert("RGB")))
            cells.append((src, cell(m.translate(f, direction, TRANSLATE_SIZE))))
        tiles = np.stack([c[0] for c in cells] + [c[1] for c in cells])
        jpeg(OUT / f"{direction}.jpg", images.make_grid(tiles, len(cells), pad_value=255))


def cell(arr: np.ndarray, size: int = STRIP_CELL) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).resize((size, size), Image.Resampling.BICUBIC))


def jpeg(path: Path, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=88, optimize=True)
    write(path, buf.getvalue())


def size_strip(models: dict[str, Path], name: str) -> None:
    """The shipped apple photo through each model at the working sizes ``size=64, 128, 256``
    (one row per model: the input, then the outputs, each shown at 192 px)."""
    rows = []
    for path in models.values():
        m = api.load(path)
        src = np.asarray(Image.open(SHIPPED["apple2orange"]).convert("RGB"))
        rows += [cell(src)] + [cell(m.translate(SHIPPED["apple2orange"], "apple2orange", s)) for s in WORK_SIZES]
    jpeg(OUT / name, images.make_grid(np.stack(rows), 1 + len(WORK_SIZES), pad_value=255))


def interpolation_gif() -> None:
    """Six stylegan walks (GET /interpolate?model=stylegan&seed_a=i&seed_b=i+6&steps=12), there and back, 2x."""
    m = api.load(PRETRAINED / "stylegan")
    walks = [m.interpolate(i, i + 6, steps=12) for i in range(6)]  # each [steps, H, W, 1]
    frames = np.stack([zoom(images.make_grid(np.stack([w[t] for w in walks]), 6), 2) for t in range(12)])
    frames = np.concatenate([frames, frames[-2:0:-1]])
    write(OUT / "stylegan-interpolation.gif", images.encode_gif(frames, duration_ms=80))


def mixing_grid() -> None:
    """GET /mix?model=M&seeds=1,2,3,4,5&styles=6,7,8,9,10&crossover=3, 2x, for every shipped StyleGAN."""
    for name in STYLEGANS:
        m = api.load(PRETRAINED / name)
        grid = m.mix([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], crossover=MIX_CROSSOVER)
        write(OUT / f"{name}-mix.png", images.encode_png(zoom(grid, 2)))


def truncation_strip() -> None:
    """The faces and CIFAR-10 StyleGANs at psi 1, 0.7, 0.4 (rows), seeds 0-7: GET /generate?model=M&n=8&psi=P, 2x."""
    for name in TRUNCATED:
        m = api.load(PRETRAINED / name)
        rows = np.concatenate([m.generate(n=8, seed=0, psi=p) for p in (1.0, 0.7, 0.4)])
        write(OUT / f"{name}-truncation.png", images.encode_png(zoom(api.grid(rows, 8), 2)))


def nearest_faces(data: Path | None) -> None:
    """Memorisation check as pictures: 12 stylegan-faces samples (seed 0, top row) over the
    training face nearest to each in pixels (bottom row), 2x. Needs ``--data`` (the training
    faces). Issue 17 asks for these pairs in RESULTS.md: 12 of the 400 Olivetti faces (AT&T
    Laboratories Cambridge, distributed with scikit-learn) are shown as the evidence, the
    dataset itself never enters the repo."""
    if data is None or not (data / "olivetti_faces").is_dir():
        return
    from training.data import load_dataset  # the training loader: the same faces, the same split

    m = api.load(PRETRAINED / "stylegan-faces")
    train = load_dataset("olivetti", data / "olivetti_faces", "train", image_size=int(m.card["image_size"]))
    faces = train.images.numpy().transpose(0, 2, 3, 1)  # uint8 NHWC, resized as for training
    samples = m.generate(n=12, seed=0)
    d = ((samples.reshape(12, 1, -1).astype(np.float64) - faces.reshape(1, len(faces), -1)) ** 2).sum(-1)
    nearest = faces[d.argmin(1)]
    write(OUT / "stylegan-faces-nearest.png", images.encode_png(zoom(api.grid(np.concatenate([samples, nearest]),
                                                                               12), 2)))


def quality_chart(plt) -> None:  # noqa: ANN001
    """The shipped MNIST models' 1-NN accuracy and pixel MMD (cards) beside the lecture notes'."""
    models = ["dcgan", "cgan", "stylegan", "aae"]
    metrics = {n: json.loads((PRETRAINED / n / "card.json").read_text())["metrics"] for n in models}
    rows = [(n, metrics[n]["one_nn_acc"], metrics[n]["one_nn_acc_std"], metrics[n]["pixel_mmd"],
             metrics[n]["pixel_mmd_std"], "#0a66c2") for n in models]
    nan = float("nan")  # the notes give no spread
    rows += [("notes: GAN", 0.6835, nan, 0.1964, nan, "#999999"), ("notes: WGAN", 0.6788, nan, 0.1079, nan, "#999999"),
             ("real train\nvs test", 0.510, 0.006, 0.031, 0.004, "#2e7d32")]  # docs/RESULTS.md
    labels = [r[0] for r in rows]
    colours = [r[5] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    a.bar(labels, [r[1] for r in rows], yerr=[r[2] for r in rows], color=colours, capsize=3)
    a.axhline(0.5, color="#2e7d32", lw=0.8, ls="--")
    a.set_ylim(0.45, 0.72)
    a.set_title("1-NN accuracy (0.5 ideal, lower is better)", fontsize=9)
    b.bar(labels, [r[3] for r in rows], yerr=[r[4] for r in rows], color=colours, capsize=3)
    b.set_title("pixel MMD (lower is better)", fontsize=9)
    for ax in (a, b):
        ax.tick_params(axis="x", labelsize=7, rotation=30)
        ax.tick_params(axis="y", labelsize=7)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    fig.suptitle("MNIST: shipped models (blue, from their cards) vs the lecture notes (grey)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    write(OUT / "quality.png", buf.getvalue())


def curves_png(plt, artifact: Path) -> bytes | None:  # noqa: ANN001
    """The training curves an artifact ships (its card's ``curves``): losses, and the keep-best
    score with the exported step marked. None when it ships none."""
    m = api.load(artifact)
    curves = m.curves()
    if not curves:
        return None
    card, name = m.card, m.name
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100, sharex=True)
    for key in sorted(k for k in curves if k.startswith("loss")):
        steps, values = curves[key]
        a.plot(steps, values, lw=0.9, label=key)
    a.set_title("losses", fontsize=9)
    a.legend(fontsize=7, frameon=False)
    exported = card.get("steps")
    if "eval_score" in curves:
        steps, values = curves["eval_score"]
        b.plot(steps, values, "o-", ms=2.5, lw=0.9, color="#0a66c2", label="eval_score")
        best = min(range(len(values)), key=values.__getitem__)
        b.plot([steps[best]], [values[best]], "o", ms=6, mfc="none", color="#c62828",
               label=f"best {values[best]:.3f} at {steps[best]}")
        b.set_title("keep-best score (lower is better, 0.5 ideal)", fontsize=9)
    else:
        b.text(0.5, 0.5, "no keep-best score logged", ha="center", va="center", fontsize=9, transform=b.transAxes)
        b.set_title("keep-best score", fontsize=9)
    if isinstance(exported, int):
        b.axvline(exported, color="#999999", lw=0.8, ls="--", label=f"exported step {exported}")
    b.legend(fontsize=7, frameon=False)
    for ax in (a, b):
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    every = card["curves"].get("averaged_every") or 0
    how = f"scalars averaged per {every} steps" if every else "every logged step"
    fig.suptitle(f"{name}: training curves from its {card['curves']['file']} ({how})", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def curve_figures(plt) -> list[str]:  # noqa: ANN001
    """docs/images/curves-NAME.png for every shipped artifact that carries curves; their names."""
    names = []
    for artifact in sorted(p for p in PRETRAINED.iterdir() if (p / "card.json").is_file()):
        png = curves_png(plt, artifact)
        if png is not None:
            write(OUT / f"curves-{artifact.name}.png", png)
            names.append(artifact.name)
    return names


CURVES_BEGIN, CURVES_END = "<!-- curves {}: make figures -->", "<!-- /curves -->"


def curves_summary(with_curves: list[str], without: list[str]) -> str:
    """RESULTS.md's one paragraph on which shipped artifacts carry training curves."""
    have = ", ".join(with_curves) if with_curves else "none yet"
    text = (f"Training curves (loss_d, loss_g and the keep-best score vs step, `make figures` from the "
            f"`metrics.csv` an artifact ships; export copies it from the run) are in the artifacts of: {have}.")
    if without:
        text += (f" Not yet in: {', '.join(without)}, exported before artifacts carried curves, from run folders "
                 f"that are gone; `make pretrained NAMES=\"{' '.join(without)}\"` (or `python -m training.recipes "
                 "NAME`) re-runs their recipes and the export ships them.")
    return text


def curves_block(name: str, has_curves: bool, indent: str = "", body: str | None = None) -> str:
    """What RESULTS.md says under a model's section about its training curves (``body``: instead)."""
    if body is None and has_curves:
        body = f"![training curves of {name}: losses and the keep-best score vs step](images/curves-{name}.png)"
    elif body is None:
        body = (f"Training curves of {name}: not in its artifact yet (the run folder is gone; "
                f"`make pretrained NAMES={name}` re-runs the recipe, whose export ships them).")
    return "\n".join([indent + CURVES_BEGIN.format(name), indent + body, indent + CURVES_END])


def embed_curves_in_results(with_curves: list[str], results: Path = REPO / "docs" / "RESULTS.md") -> None:
    """Fill each ``<!-- curves NAME -->`` block of RESULTS.md with that model's curves figure, or
    with the sentence that it has none yet (idempotent)."""
    text = results.read_text()
    names = sorted(p.name for p in PRETRAINED.iterdir() if (p / "card.json").is_file())
    summary = curves_summary([n for n in names if n in with_curves], [n for n in names if n not in with_curves])
    for artifact in [*names, "summary"]:
        begin = CURVES_BEGIN.format(artifact)
        if begin not in text:
            continue
        head, _, rest = text.partition(begin)
        indent = head[head.rfind("\n") + 1:]
        tail = rest.partition(CURVES_END)[2]
        block = curves_block(artifact, artifact in with_curves, indent, summary if artifact == "summary" else None)
        text = head[: len(head) - len(indent)] + block + tail
    if text != results.read_text():
        results.write_text(text)
        print(f"updated the training-curves blocks of {results.name}")


CARD_FIGURES = {  # card.md of each shipped model -> (alt text, file in docs/images/)
    "dcgan": [("64 samples, seed 0 (GET /generate?model=dcgan&n=64&seed=0)", "dcgan-grid.png")],
    "cgan": [("64 samples, seed 0; tile i has class i % 10", "cgan-grid.png"),
             ("one row per label", "cgan-classes.png")],
    "cgan-fashion": [("64 samples, seed 0; tile i has class i % 10", "cgan-fashion-grid.png"),
                     ("one row per label", "cgan-fashion-classes.png")],
    "stylegan": [("64 samples, seed 0", "stylegan-grid.png"),
                 (f"style mixing, crossover {MIX_CROSSOVER}", "stylegan-mix.png")],
    "aae": [("64 decoder samples from the prior, seed 0", "aae-grid.png")],
    "stylegan-faces": [("64 samples, seed 0", "stylegan-faces-grid.png"),
                       ("truncation: psi 1, 0.7, 0.4 (rows), seeds 0-7", "stylegan-faces-truncation.png"),
                       (f"style mixing, crossover {MIX_CROSSOVER}", "stylegan-faces-mix.png")],
    "stylegan-cifar10": [("64 samples, seed 0", "stylegan-cifar10-grid.png"),
                         ("truncation: psi 1, 0.7, 0.4 (rows), seeds 0-7", "stylegan-cifar10-truncation.png"),
                         (f"style mixing, crossover {MIX_CROSSOVER}", "stylegan-cifar10-mix.png")],
    "cyclegan": [(f"apple -> orange (top: input, bottom: output; size={TRANSLATE_SIZE})", "apple2orange.jpg"),
                 ("orange -> apple", "orange2apple.jpg"),
                 ("input, then size=64, 128, 256", "cyclegan-sizes.jpg")],
}
BEGIN, END = "<!-- figures: make figures -->", "<!-- /figures -->"


def embed_in_cards() -> None:
    """Put each model's figures under its card.md's description, between markers (idempotent:
    ``training eval --write`` re-renders card.md without them, ``make figures`` puts them back)."""
    for name, items in CARD_FIGURES.items():
        if (OUT / f"curves-{name}.png").is_file() and json.loads((PRETRAINED / name / "card.json").read_text()).get(
                "curves"):
            items = [*items, ("training curves: losses and the keep-best score vs step", f"curves-{name}.png")]
        path = PRETRAINED / name / "card.md"
        text = path.read_text()
        if BEGIN in text:
            head, _, rest = text.partition(BEGIN)
            text = head.rstrip("\n") + "\n\n" + rest.partition(END)[2].lstrip("\n")
        block = "\n".join([BEGIN, *(f"![{alt}](../../../docs/images/{f})" for alt, f in items), END, ""])
        lines = text.split("\n")
        at = 4 if len(lines) > 3 and lines[1] == "" and lines[3] == "" else 2  # after title and description
        new = "\n".join(lines[:at]) + "\n" + block + "\n" + "\n".join(lines[at:])
        if new != path.read_text():
            path.write_text(new)
            print(f"embedded {len(items)} figure(s) in {path.relative_to(REPO)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="../shared/data: adds two test photos per translation strip")
    parser.add_argument("--before", type=Path, help="an earlier cyclegan artifact: also writes "
                        "cyclegan-before-after.jpg, its row above the shipped model's")
    args = parser.parse_args(argv)
    data = args.data if args.data and (args.data / "apple2orange").is_dir() else None
    if args.data and data is None:
        print(f"note: {args.data}/apple2orange not found; the strips use the shipped photos only")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    OUT.mkdir(parents=True, exist_ok=True)
    sample_grids()
    critic_pairs()
    class_rows(plt)
    strips(data)
    size_strip({"shipped": PRETRAINED / "cyclegan"}, "cyclegan-sizes.jpg")
    if args.before:
        size_strip({"before": args.before, "shipped": PRETRAINED / "cyclegan"}, "cyclegan-before-after.jpg")
    interpolation_gif()
    mixing_grid()
    truncation_strip()
    nearest_faces(args.data)
    quality_chart(plt)
    embed_curves_in_results(curve_figures(plt))
    embed_in_cards()
    return 0


if __name__ == "__main__":
    sys.exit(main())
