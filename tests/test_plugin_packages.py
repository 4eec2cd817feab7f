"""Real pip-installed plugin packages: one whose import calls sys.exit, and the `zoo new` skeleton."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zoo import registry

REPO = Path(__file__).resolve().parents[1]


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def installed(tmp_path):
    """Install a package folder for real (``--no-deps --no-build-isolation``), uninstall it afterwards."""
    dists: list[str] = []

    def install(folder: Path, dist: str) -> None:
        out = pip("install", "-q", "--no-deps", "--no-build-isolation", str(folder))
        assert out.returncode == 0, out.stderr
        dists.append(dist)
        registry.refresh()

    yield install
    for dist in dists:
        pip("uninstall", "-y", "-q", dist)
    registry.refresh()


def zoo_cli(*args: str, block_torch: bool = False) -> subprocess.CompletedProcess:
    """``python -m zoo ...``; ``block_torch`` makes ``import torch`` fail as in the serving-only install."""
    block = "sys.modules['torch'] = None; " if block_torch else ""
    code = f"import runpy, sys; {block}sys.argv = ['zoo', *sys.argv[1:]]; runpy.run_module('zoo', run_name='__main__')"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_a_plugin_that_calls_sys_exit_at_import_is_reported_not_fatal(tmp_path, installed):
    pkg = tmp_path / "exitzoo"
    (pkg / "exitzoo").mkdir(parents=True)
    (pkg / "exitzoo" / "__init__.py").write_text("import sys\nsys.exit('exitzoo refuses to load')\n")
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "exitzoo"\nversion = "0.1"\n'
        '[project.entry-points."ganzoo.variants"]\nexits = "exitzoo:Variant"\n'
        '[tool.setuptools]\npackages = ["exitzoo"]\n'
    )
    installed(pkg, "exitzoo")
    bad = {b.name: b for b in registry.broken()}
    assert bad["exits"].distribution == "exitzoo"
    assert "SystemExit: exitzoo refuses to load" in bad["exits"].reason
    assert "dcgan" in registry.list_variants() and "exits" not in registry.list_variants()
    out = zoo_cli("list")
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if line.startswith("exits"))
    assert line.split()[1] == "BROKEN" and "SystemExit" in line


def test_zoo_list_without_torch_says_what_needs_it():
    out = zoo_cli("list", block_torch=True)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert {"dcgan", "cgan", "aae", "stylegan", "cyclegan", "wgan-gp"} <= set(rows)
    assert all(row.split()[1] == "NEEDS-TORCH" and "pip install 'ganzoo[train]'" in row for row in rows.values())
    assert "Traceback" not in out.stderr


def test_zoo_new_writes_a_package_that_installs_and_passes_its_test(tmp_path, installed):
    dest = tmp_path / "ganzoo-tiny-mlp"
    out = zoo_cli("new", "tiny-mlp", "--out", str(dest))
    assert out.returncode == 0, out.stderr
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == [
        "README.md", "ganzoo_tiny_mlp/__init__.py", "pyproject.toml", "tests/test_tiny_mlp.py"]
    installed(dest, "ganzoo-tiny-mlp")
    assert {e.name: e.distribution for e in registry.entries()}["tiny-mlp"] == "ganzoo-tiny-mlp"
    # its own test, as written, run from its own folder: registration and the conformance check
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=dest,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "2 passed" in run.stdout
    listed = zoo_cli("list")
    assert any(line.split()[:3] == ["tiny-mlp", "generate", "ganzoo-tiny-mlp"] for line in listed.stdout.splitlines())


def test_zoo_new_refuses_bad_names_and_existing_folders(tmp_path):
    out = zoo_cli("new", "Bad_Name", "--out", str(tmp_path / "x"))
    assert out.returncode == 2 and "lowercase" in out.stderr and not (tmp_path / "x").exists()
    (tmp_path / "y").mkdir()
    out = zoo_cli("new", "ok-name", "--out", str(tmp_path / "y"))
    assert out.returncode == 2 and "already exists" in out.stderr
