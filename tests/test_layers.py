"""The package's layers point one way (core → sources → codec → encoding → training → study → cli),
enforced by import-linter's ``layers`` contract in pyproject.toml; intra-package imports sit at the
top of each module, where the direction of every dependency can be read."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rapidinr"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run import-linter over the ``rapidinr`` package found in ``root`` (its pyproject.toml)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()", "--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_layers_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_a_wrong_way_import_breaks_the_build(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "rapidinr", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    metrics = tmp_path / "rapidinr" / "core" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\nfrom rapidinr.training import loaders  # wrong way\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "rapidinr.core.metrics -> rapidinr.training.loaders" in result.stdout


# Imports that may stay inside functions: optional or heavy third-party modules only.
OPTIONAL = ("ipywidgets", "IPython", "matplotlib", "nvidia", "torchvision.io", "zstandard", "playwright",
            "torch._dynamo", "triton", "torchvision", "imagecodecs", "bjontegaard",
            "nbclient", "nbformat", "nbconvert", "scipy")
# torchvision: ~1 s to import; imagecodecs: the [jxl] extra; bjontegaard: imports matplotlib.pyplot;
# nbclient, nbformat, nbconvert: the notebooks' HTML builder (the `notebooks`/`test` extras);
# scipy.stats: ~0.3 s to import, needed only for Student t intervals over seeds


def function_local_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom):
                    found.append((inner.lineno, "." * inner.level + (inner.module or "")))
                elif isinstance(inner, ast.Import):
                    found += [(inner.lineno, alias.name) for alias in inner.names]
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_function_local_imports_are_optional_dependencies_only(path):
    wrong = [(line, name) for line, name in function_local_imports(path)
             if name.startswith((".", "rapidinr")) or not name.startswith(OPTIONAL)]
    assert not wrong, f"{path.name}: move to the top (or it is optional: add to OPTIONAL with a reason): {wrong}"
