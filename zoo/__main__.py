"""``python -m zoo list``: the registered variants and who provided them.
``python -m zoo new NAME``: write a plugin package skeleton (docs/PLUGINS.md)."""

from __future__ import annotations

import argparse
import sys

from zoo import registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list registered variants, their task and distribution")
    n = sub.add_parser("new", help="write a plugin package skeleton that installs and passes its test")
    n.add_argument("name", help="the variant's name, e.g. my-gan (the package is ganzoo-my-gan)")
    n.add_argument("--out", help="folder to create (default: ./ganzoo-NAME)")
    args = parser.parse_args(argv)
    if args.cmd == "new":
        from zoo.new import write_skeleton

        try:
            dest = write_skeleton(args.name, args.out or f"ganzoo-{args.name}")
        except (ValueError, FileExistsError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"wrote {dest}: pip install -e {dest} && python -m pytest {dest / 'tests'}")
        return 0
    if args.cmd == "list":
        print(f"{'variant':<16} {'task':<12} distribution")
        for e in registry.entries():
            print(f"{e.name:<16} {e.cls.task:<12} {e.distribution}")
        for b in registry.broken():
            status = "NEEDS-TORCH" if b.needs_torch else "BROKEN"
            print(f"{b.name:<16} {status:<12} {b.distribution}: {b.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
