"""Every notebook in notebooks/ runs top to bottom with its quick parameters (nbclient).

New notebooks are picked up by the glob. Also checked: notebooks are stored without outputs,
start with a ``parameters``-tagged code cell, and a bad parameter ends in one readable line.
"""
from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError  # noqa: E402

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def _execute(nb, monkeypatch, timeout=120):
    """Run a notebook in a fresh kernel. A cell error (CellExecutionError) fails at once.

    A cell that gets no reply within ``timeout`` (every quick cell takes seconds; the slowest,
    06's training, 11-15 s on a quiet 2-core machine) is run once more in a fresh kernel: two of
    about ten CI rehearsals stalled with the kernel idle in its event loop and the client waiting
    for the execute reply, a reply lost between them, not a slow or failing cell (168 stress runs
    on ipykernel 6.31 and 7.4 did not reproduce it). A second stall fails the test.
    """
    # One thread per kernel: the quick fits are tiny, and the test machine's cores are shared.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    pristine = copy.deepcopy(nb)  # the retry starts from the unexecuted cells
    for attempt in (1, 2):
        run = nb if attempt == 1 else copy.deepcopy(pristine)
        client = nbclient.NotebookClient(run, timeout=timeout, kernel_name="python3",
                                         resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
        try:
            done = client.execute()  # executes ``run`` in place (callers read nb's outputs)
        except (CellTimeoutError, DeadKernelError):
            if attempt == 2:
                raise
            continue
        if run is not nb:
            nb.cells[:] = run.cells
        return done


def _first_code_cell(nb):
    return next(c for c in nb.cells if c.cell_type == "code")


def test_there_are_notebooks():
    names = {p.stem for p in NOTEBOOKS}
    assert {"00_walkthrough", "03_architecture_search"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_clean_with_parameters_first(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name}: committed with outputs (clear them)"
            assert cell.execution_count is None, f"{path.name}: committed with execution counts"
    first = _first_code_cell(nb)
    assert "parameters" in first.metadata.get("tags", []), f"{path.name}: first code cell must be tagged 'parameters'"
    assert "full" in first.source.lower(), f"{path.name}: parameters cell should give the full-size settings"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_with_quick_parameters(path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    done = _execute(nb, monkeypatch)  # raises CellExecutionError on the first failing cell
    errors = [o for c in done.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    shown = [o for c in done.cells if c.cell_type == "code" for o in c.outputs
             if o.output_type in ("display_data", "execute_result") and "image/png" in o.get("data", {})]
    text = "".join(o.get("text", "") for c in done.cells if c.cell_type == "code" for o in c.outputs)
    assert shown or "application/vnd.jupyter.widget-view+json" in str(done.cells), f"{path.name}: shows nothing"
    assert "Traceback" not in text


@pytest.mark.slow
def test_bad_parameter_reads_as_one_line(monkeypatch):
    nb = nbformat.read(NOTEBOOK_DIR / "00_walkthrough.ipynb", as_version=4)
    bad = copy.deepcopy(nb)
    index = bad.cells.index(_first_code_cell(bad))
    bad.cells.insert(index + 1, nbformat.v4.new_code_cell("IMAGES = -5  # injected: out of range"))
    with pytest.raises(CellExecutionError):
        _execute(bad, monkeypatch, timeout=120)
    errors = [o for c in bad.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert len(errors) == 1
    traceback = "\n".join(errors[0]["traceback"])
    assert "rapidinr: error: parameter IMAGES = -5 is out of range" in traceback
    assert len(errors[0]["traceback"]) == 1 and "File " not in traceback  # one line, no traceback wall
