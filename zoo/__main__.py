"""``python -m zoo list``: the registered variants and who provided them."""

from __future__ import annotations

import argparse
import sys

from zoo import registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list registered variants, their task and distribution")
    args = parser.parse_args(argv)
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
