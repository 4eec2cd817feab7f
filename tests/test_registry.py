"""Plugin discovery through real entry points, including broken plugins."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zoo import registry
from zoo.dcgan import DCGAN

BUILTINS = {"dcgan", "cgan", "aae", "stylegan", "cyclegan"}


def test_builtins_are_found_through_the_entry_point_group():
    entries = {e.name: e for e in registry.entries()}
    assert BUILTINS <= set(entries), f"missing: {BUILTINS - set(entries)}; broken: {registry.broken()}"
    assert all(entries[n].distribution == "ganzoo" for n in BUILTINS)
    assert registry.get_variant("dcgan") is DCGAN
    assert "dcgan" in registry.list_variants(task="generate")
    assert "cyclegan" in registry.list_variants(task="translate")


def test_the_example_plugin_is_a_real_installed_distribution():
    entries = {e.name: e for e in registry.entries()}
    assert entries["wgan-gp"].distribution == "ganzoo-wgan-gp", "run make test: it pip-installs examples/"


@pytest.fixture
def broken_plugins(tmp_path, monkeypatch):
    """A real distribution on sys.path whose entry points are broken in three ways."""
    dist = tmp_path / "badzoo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: badzoo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[ganzoo.variants]\n"
        "crashes = badzoo_mod:Crashes\n"
        "notavariant = badzoo_ok:NotAVariant\n"
        "misnamed = badzoo_ok:Misnamed\n"
    )
    (tmp_path / "badzoo_mod.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "badzoo_ok.py").write_text(
        "from zoo.dcgan import DCGAN\n"
        "class NotAVariant:\n    pass\n"
        "class Misnamed(DCGAN):\n    name = 'something-else'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh()
    yield
    registry.refresh()


def test_broken_plugins_are_reported_and_skipped(broken_plugins):
    bad = {b.name: b for b in registry.broken()}
    assert "boom at import" in bad["crashes"].reason and bad["crashes"].distribution == "badzoo"
    assert "not a subclass" in bad["notavariant"].reason
    assert "registered as 'misnamed'" in bad["misnamed"].reason
    assert "dcgan" in registry.list_variants() and "crashes" not in registry.list_variants()
    with pytest.raises(KeyError, match="broken"):
        registry.get_variant("crashes")


def test_cli_lists_variants_and_broken_ones(tmp_path):
    out = subprocess.run([sys.executable, "-m", "zoo", "list"], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["variant", "task", "distribution"]
    assert any(line.split()[:3] == ["dcgan", "generate", "ganzoo"] for line in lines)
