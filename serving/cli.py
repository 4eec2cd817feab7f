"""``ganzoo``: generate, translate and interpolate with a ganzoo model, no server and no torch.

    ganzoo models                                           # what can be loaded, and what each can do
    ganzoo generate --model dcgan --seeds 0-63 --outdir out/           # out/seed0000.png ... one per seed
    ganzoo generate --model cgan-fashion --seeds 0-15 --label Trouser --grid --outdir out/
    ganzoo translate photo.jpg --direction apple2orange --outdir out/
    ganzoo interpolate --model stylegan --seeds 1,2 --steps 24 --out walk.gif

Seed ``s`` of ``generate`` is tile 0 of seed ``s``, so ``seed0007.png`` has the pixels of
``GET /generate?model=dcgan&n=1&seed=7``. Models come from the BentoML store (latest version
of the name), else from ``serving/pretrained/``; ``--artifact DIR`` loads an export folder.
``ganzoo list`` (the registered variants) is forwarded to ``python -m zoo`` where torch is installed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from serving import api, images
from serving.errors import ServingError

MAX_SEEDS = 100_000


def parse_seeds(text: str) -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]`` (ranges inclusive, as stylegan2-ada's generate.py)."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise argparse.ArgumentTypeError(f"seeds must look like 0-63 or 1,2,5, got {text!r}") from None
        if a < 0 or b < a:
            raise argparse.ArgumentTypeError(f"bad seed range {part!r}: need 0 <= start <= end")
        seeds.extend(range(a, b + 1))
        if len(seeds) > MAX_SEEDS:
            raise argparse.ArgumentTypeError(f"more than {MAX_SEEDS} seeds")
    if not seeds:
        raise argparse.ArgumentTypeError("no seed given")
    return seeds


def _label(text: str | None) -> int | str | None:
    if text is None:
        return None
    return int(text) if text.strip().lstrip("-").isdigit() else text


def _load(args: argparse.Namespace, default: str | None = None) -> api.Model:
    if args.artifact:
        return api.load_artifact(args.artifact, device=args.device)
    name = args.model or default
    if not name:
        raise ServingError(422, "give --model NAME (see `ganzoo models`) or --artifact DIR")
    return api.load(name, home=args.home, device=args.device)


def cmd_models(args: argparse.Namespace) -> int:
    names = sorted({*api.stored_names(args.home), *(p.name for p in api.PRETRAINED.iterdir()
                                                    if (p / "card.json").is_file())})
    print(f"{'model':<16} {'source':<10} {'dataset':<14} {'steps':>6}  capabilities / classes")
    for name in names:
        try:
            m = api.load(name, home=args.home, device=args.device)
        except Exception as e:  # one broken model must not hide the others
            print(f"{name:<16} {'BROKEN':<10} {e}")
            continue
        info = m.info()
        extra = f"; classes: {', '.join(m.classes)}" if info["conditional"] else ""
        extra += f"; directions: {', '.join(m.directions)}" if m.directions else ""
        source = "store" if m.source == "store" else "pretrained"
        print(f"{name:<16} {source:<10} {info['dataset'] or '':<14} {info['steps'] or '':>6}  "
              f"{', '.join(m.capabilities)}{extra}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    m = _load(args)
    label = _label(args.label)
    outdir = Path(args.outdir)
    tiles = [m.generate(n=1, seed=s, label=label, psi=args.trunc, filter=args.filter)[0] for s in args.seeds]
    if args.grid:
        path = api.save_png(api.grid(np.stack(tiles)), outdir / "grid.png")
        print(f"wrote {path} ({len(tiles)} seeds of {m.name})")
        return 0
    for s, tile in zip(args.seeds, tiles, strict=True):
        api.save_png(tile, outdir / f"seed{s:04d}.png")
    print(f"wrote {len(tiles)} images of {m.name} to {outdir}/ (seed{args.seeds[0]:04d}.png ...)")
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    m = _load(args, default="cyclegan")
    direction = args.direction
    m.gan.resolve_direction(direction)
    outdir = Path(args.outdir)
    for src in args.images:
        out = m.translate(src, direction, args.size)
        suffix = direction or next(iter(m.directions))
        path = api.save_png(out, outdir / f"{Path(src).stem}-{suffix}.png")
        print(f"wrote {path}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    m = _load(args)
    if len(args.seeds) != 2:
        raise ServingError(422, f"interpolate takes two seeds (--seeds A,B), got {len(args.seeds)}")
    frames = m.interpolate(args.seeds[0], args.seeds[1], args.steps, _label(args.label), args.trunc)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        out.write_bytes(images.encode_gif(frames))
    else:
        out.write_bytes(images.encode_png(images.make_grid(frames, len(frames))))
    print(f"wrote {out} ({len(frames)} frames of {m.name})")
    return 0


def _forward_to_zoo(argv: list[str]) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        print(f"ganzoo {argv[0]} needs the training install (torch): pip install 'ganzoo[train]'", file=sys.stderr)
        return 2
    from zoo.__main__ import main as zoo_main

    return zoo_main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganzoo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="BENTOML_HOME of the model store (default: BentoML's)")
    common.add_argument("--device", default="cpu", choices=["cpu", "auto", "cuda"], help="ONNX Runtime device")
    pick = argparse.ArgumentParser(add_help=False, parents=[common])
    pick.add_argument("--model", help="model name (store, else serving/pretrained/)")
    pick.add_argument("--artifact", help="artifact directory (card.json + *.onnx) instead of --model")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("models", parents=[common], help="models that can be loaded and what they can do")
    g = sub.add_parser("generate", parents=[pick], help="one PNG per seed (tile 0 of the seed), or one grid")
    g.add_argument("--seeds", type=parse_seeds, required=True, help="e.g. 0-63 or 1,5,9")
    g.add_argument("--label", help="class index or name (conditional models)")
    g.add_argument("--trunc", "--psi", dest="trunc", type=float, help="truncation psi (models with a psi input)")
    g.add_argument("--filter", choices=["critic", "none"], help="through the model's critic (its default where it "
                   "ships one, docs/SAMPLING.md) or the generator alone")
    g.add_argument("--outdir", default="out", help="output folder (default: out)")
    g.add_argument("--grid", action="store_true", help="one grid.png of all seeds instead of a file per seed")
    t = sub.add_parser("translate", parents=[pick], help="translate images (default model: cyclegan)")
    t.add_argument("images", nargs="+", help="image files")
    t.add_argument("--direction", help="e.g. apple2orange (see `ganzoo models`)")
    t.add_argument("--size", type=int, help="working resolution of the shorter side (default: the model's)")
    t.add_argument("--outdir", default="out", help="output folder; writes STEM-DIRECTION.png")
    i = sub.add_parser("interpolate", parents=[pick], help="frames from seed A to seed B, PNG strip or GIF")
    i.add_argument("--seeds", type=parse_seeds, required=True, help="two seeds: A,B")
    i.add_argument("--steps", type=int, default=8, help="frames, 2..64 (default 8)")
    i.add_argument("--label", help="class index or name (conditional models)")
    i.add_argument("--trunc", "--psi", dest="trunc", type=float, help="truncation psi")
    i.add_argument("--out", default="out/interpolation.gif", help="output file, .gif (animated) or .png (strip)")
    sub.add_parser("list", help="registered variants (python -m zoo list; needs torch)", add_help=False)
    return parser


COMMANDS = {"models": cmd_models, "generate": cmd_generate, "translate": cmd_translate, "interpolate": cmd_interpolate}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "list":
        return _forward_to_zoo(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.cmd](args)
    except ServingError as e:
        print(f"ganzoo {args.cmd}: error: {e.message}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:
        print(f"ganzoo {args.cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
