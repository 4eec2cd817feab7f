"""An artifact's training curves: the run's ``metrics.csv`` (``step,name,value`` rows), shipped
beside the graphs so the curves of a model outlive its run folder (docs/ARTIFACTS.md).

Export writes it with :func:`compact` (every ``eval_*`` row kept, the other scalars averaged
per ``every`` steps once the file would pass ``MAX_BYTES``); the card records it under
``"curves"`` with its sha256 and bytes, and ``serving.contract.check_curves`` verifies it
wherever an artifact is checked. Standard library only: serving (no torch, no matplotlib)
reads it with :func:`read_curves`.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

CURVES_FILE = "metrics.csv"
HEADER = ("step", "name", "value")
MAX_BYTES = 100_000  # per artifact: a few hundred points per curve
EVERY = 100  # steps per averaged point, doubled until the file fits MAX_BYTES


class CurvesError(ValueError):
    """A metrics file that is not ``step,name,value`` rows."""


def parse(text: str) -> list[tuple[int, str, float]]:
    """The rows of a metrics file; a step logged twice (a resumed run re-logs the steps since
    its checkpoint) keeps its last value, in the order the steps first appeared."""
    reader = csv.reader(io.StringIO(text))
    header = tuple(next(reader, ()))
    if header != HEADER:
        raise CurvesError(f"a metrics file starts with {','.join(HEADER)}, not {','.join(header) or 'nothing'}")
    rows: dict[tuple[int, str], float] = {}
    for i, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            step, name, value = int(row[0]), row[1], float(row[2])
        except (ValueError, IndexError):
            raise CurvesError(f"line {i}: {','.join(row)!r} is not step,name,value") from None
        rows[(step, name)] = value
    return sorted(((s, n, v) for (s, n), v in rows.items()), key=lambda r: r[0])


def read_curves(path: str | Path) -> dict[str, tuple[list[int], list[float]]]:
    """name -> (steps, values) of a metrics file, steps ascending."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    for step, name, value in parse(Path(path).read_text()):
        steps, values = out.setdefault(name, ([], []))
        steps.append(step)
        values.append(value)
    return out


def _render(rows: list[tuple[int, str, float]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    w.writerows((s, n, f"{v:.6g}") for s, n, v in rows)
    return buf.getvalue()


def _averaged(rows: list[tuple[int, str, float]], every: int) -> list[tuple[int, str, float]]:
    """``eval_*`` rows as they are; each other name averaged over steps ((k-1)*every, k*every],
    stamped with the last step it averages."""
    bins: dict[tuple[int, str], list[tuple[int, float]]] = defaultdict(list)
    kept = []
    for step, name, value in rows:
        if name.startswith("eval_"):
            kept.append((step, name, value))
        else:
            bins[(-(-step // every), name)].append((step, value))
    for (_, name), points in bins.items():
        kept.append((max(s for s, _ in points), name, sum(v for _, v in points) / len(points)))
    return sorted(kept, key=lambda r: (r[0], r[1]))


def compact(text: str, max_bytes: int = MAX_BYTES, every: int = EVERY) -> tuple[str, int]:
    """(file text, steps per averaged point: 0 when every row fits) within ``max_bytes``."""
    rows = parse(text)
    out = _render(rows)
    if len(out.encode()) <= max_bytes:
        return out, 0
    while True:
        out = _render(_averaged(rows, every))
        if len(out.encode()) <= max_bytes:
            return out, every
        if every > max(1, rows[-1][0]):
            raise CurvesError(f"even one point per curve passes {max_bytes} bytes (the eval rows alone are too many)")
        every *= 2


def record(path: Path, every: int) -> dict[str, Any]:
    """The card's ``"curves"`` entry for a metrics file written in an artifact folder."""
    data = path.read_bytes()
    curves = read_curves(path)
    return {
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "names": sorted(curves),
        "last_step": max((s[-1] for s, _ in curves.values()), default=0),
        "averaged_every": every,
    }
