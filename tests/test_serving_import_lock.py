"""Two imports of the same artifact at the same moment store one version, not two.

Two real ``python`` processes import into one BENTOML_HOME. Each loads BentoML, says so,
then blocks on its stdin; both are released together, so their check-then-create windows
overlap (the graph is 32 MB of placeholder bytes: copying it keeps each window open far
longer than the gap between the two releases).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from serving.import_models import LOCK_NAME, import_artifact
from serving.store import list_models, model_store

REPO = Path(__file__).resolve().parent.parent
IMPORT = (
    "import sys; from serving.import_models import _import; print('ready', flush=True); sys.stdin.readline(); "
    "tag, created = _import(__import__('pathlib').Path(sys.argv[1]), sys.argv[2]); print(tag, created, flush=True)"
)


def _artifact(root: Path) -> Path:
    d = root / "big"
    d.mkdir(parents=True)
    weights = os.urandom(32 * 1024 * 1024)
    (d / "generator.onnx").write_bytes(weights)
    card = {"name": "big", "variant": "dcgan", "task": "generate", "sha256": hashlib.sha256(weights).hexdigest(),
            "graphs": {"generator": {"file": "generator.onnx"}}}
    (d / "card.json").write_text(json.dumps(card))
    return d


def test_concurrent_imports_of_one_artifact_store_one_version(tmp_path: Path):
    art, home = _artifact(tmp_path), tmp_path / "home"
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    procs = [
        subprocess.Popen([sys.executable, "-c", IMPORT, str(art), str(home)], cwd=REPO, env=env, text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    try:
        for p in procs:  # both have imported BentoML and wait on stdin
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    lines = sorted(out.split()[0:2] for out, _ in results)
    tags = {tag for tag, _ in lines}
    assert len(tags) == 1, f"two versions stored: {lines}"
    assert sorted(created for _, created in lines) == ["False", "True"]  # one stored it, the other skipped
    assert [str(m.tag) for m in list_models(model_store(home), "big")] == list(tags)
    assert (home / "models" / LOCK_NAME).is_file()  # the lock lives in the store, and is no entry of it
    assert import_artifact(art, home=home) in tags
