"""The package as a user installs it: a wheel built from a copy of the checkout carries the
embedded data and the shipped learned inits, and reads them from outside any checkout."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent


def source_packages() -> set[str]:
    """Every package under rapidinr/ (a folder with an __init__.py), dotted."""
    return {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "rapidinr").rglob("__init__.py")}


def test_pyproject_lists_every_package():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert listed == source_packages() | {"rapidinr.data"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built (no network, no build isolation) from a copy of the checkout, so the build's
    own build/ and egg-info folders stay out of the worktree."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "rapidinr", src / "rapidinr", ignore=ignore)
    shutil.copytree(ROOT / "data", src / "data", ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(src),
                    "-w", str(out)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("rapidinr-*.whl")
    return path


def test_wheel_carries_the_data_and_every_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for data_file in (ROOT / "data").rglob("*"):
        if data_file.is_file():
            assert f"rapidinr/data/{data_file.relative_to(ROOT / 'data').as_posix()}" in names, data_file
    for module in (ROOT / "rapidinr").rglob("*.py"):
        assert module.relative_to(ROOT).as_posix() in names, module


def test_installed_wheel_reads_its_data_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    probe = (
        "import rapidinr, rapidinr.sources.datasets as d\n"
        "from rapidinr.core.config import Arch\n"
        "from rapidinr.encoding.learned_init import resolve_init, shipped_inits\n"
        "print(rapidinr.__file__)\n"
        "print(tuple(d.load_default('test').images.shape))\n"
        "print(len(shipped_inits()), resolve_init('learned', Arch.parse('3x15', 1), 28, 28).info['file'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    where, shape, inits = run.stdout.splitlines()
    assert Path(where).is_relative_to(site)  # the installed copy, not this checkout
    assert shape == "(1000, 1, 28, 28)"
    shipped = len(list((ROOT / "data").glob("init-*.safetensors")))  # every init of data/ is in the wheel
    assert inits.split()[0] == str(shipped) and inits.split()[1] == "init-default-3x15-28x28.safetensors"
