"""Executed HTML copies of the notebooks, for reading without a kernel.

The committed notebooks carry no outputs (tests/test_notebooks.py keeps them clean); this runs each
one at its quick defaults in a fresh kernel (nbclient, in the notebooks' folder, one torch thread)
and writes ``OUT/NAME.html`` (nbconvert's HTML; each interactive explorer is replaced by the figure
it drew at the defaults, since its controls need a kernel) and ``OUT/index.html`` linking them. A notebook that stops on an
error is one clear line and exit status 2; the others are still written.

    python -m rapidinr.study.notebooks_html OUT [--only 00_walkthrough,04_residuals] [--timeout 600]
"""
from __future__ import annotations

import argparse
import copy
import html
import os
import re
import sys
import time
from pathlib import Path
from queue import Empty
from time import monotonic

from rapidinr.core.errors import UserError, pick_named
from rapidinr.core.files import make_folder, write_atomic

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


def notebook_paths(only: list[str] | None = None, folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The notebooks in ``folder`` (all, or those named in ``only`` by stem); an unknown name is an error."""
    return pick_named({p.stem: p for p in sorted(folder.glob("*.ipynb"))}, only, "--only", "notebook")


def notebook_client(nb, folder: Path, timeout: int = 600):
    """An nbclient ``NotebookClient`` for ``nb`` run in ``folder``, whose wait for each cell's reply
    polls the shell channel in one-second slices (up to ``timeout`` in all).

    Why: with ipywidgets in a cell, nbclient's single long wait for the execute reply sometimes does
    not wake when the reply arrives (jupyter/nbclient#312); the cell then "takes" the whole timeout
    (610 s here for a 20 s notebook) with the kernel idle. A fresh poll each second sees the reply.
    """
    # nbclient: optional (the `test` and `notebooks` extras)
    import nbclient

    class SlicedPollClient(nbclient.NotebookClient):
        async def async_start_new_kernel_client(self):
            kc = await super().async_start_new_kernel_client()
            channel = kc.shell_channel
            wait = channel.get_msg

            async def get_msg(timeout=None, **kwargs):
                deadline = None if timeout is None else monotonic() + timeout
                while True:
                    left = 1.0 if deadline is None else max(0.0, min(1.0, deadline - monotonic()))
                    try:
                        return await wait(timeout=left, **kwargs)
                    except Empty:
                        if deadline is not None and monotonic() >= deadline:
                            raise

            channel.get_msg = get_msg
            return kc

    return SlicedPollClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(folder)}})


def execute(path: Path, timeout: int = 600):
    """Run the notebook at ``path`` in a fresh kernel in its own folder; returns the executed NotebookNode."""
    # nbformat/nbclient: optional (the `test` and `notebooks` extras), loaded only to build the copies
    import nbformat
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = notebook_client(nb, path.parent, timeout)
    try:
        client.execute()
    except CellExecutionError as err:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # the kernel's traceback, without colours
        last = text.splitlines()[-1] if text else type(err).__name__
        raise UserError(f"{path.name}: a cell failed: {last}") from None
    return nb


def widget_outputs(nb, model_id: str) -> list[dict]:
    """The outputs an executed widget (``model_id``) last showed: its Output widgets' outputs (the
    explorer's figure) and any red refusal line, in the order of the widget tree."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    found, seen = [], set()

    def walk(mid: str):
        if mid in seen or mid not in state:
            return
        seen.add(mid)
        model = state[mid]
        if model.get("model_name") == "OutputModel":
            found.extend(model.get("state", {}).get("outputs", []))
        elif model.get("model_name") == "HTMLModel" and "rapidinr:" in model.get("state", {}).get("value", ""):
            found.append({"output_type": "display_data", "metadata": {},
                          "data": {"text/html": model["state"]["value"]}})
        for child in model.get("state", {}).get("children", []):
            walk(str(child).removeprefix("IPY_MODEL_"))

    walk(model_id)
    return found


def with_static_widgets(nb):
    """A copy of ``nb`` in which each widget is replaced by its last figure as a plain output, so the
    HTML shows it without a kernel or the widget scripts (live controls need a kernel)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.outputs:
            view = out.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if not view:
                outputs.append(out)
                continue
            outputs.append({"output_type": "display_data", "metadata": {}, "data": {
                "text/html": "<i>An interactive explorer stood here (it needs a kernel); its figure at the "
                             "notebook's defaults:</i>"}})
            outputs.extend(widget_outputs(nb, view["model_id"]))
        cell.outputs = outputs
    nb.metadata.pop("widgets", None)  # nothing left to render: no widget scripts in the page
    return nb


def to_html(nb) -> str:
    """nbconvert's HTML for an executed notebook (the lab template), widgets' figures included."""
    # nbconvert: optional, loaded only to build the copies
    import nbformat
    from nbconvert import HTMLExporter

    static = nbformat.from_dict(with_static_widgets(nb))
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(static)
    return body


def build(out_dir: str | Path, only: list[str] | None = None, timeout: int = 600, log=print) -> list[dict]:
    """Execute the notebooks and write their HTML and an index into ``out_dir``; one entry per notebook
    (name, seconds, file, or error)."""
    out_dir = Path(out_dir)
    paths = notebook_paths(only)
    make_folder(out_dir)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the kernels inherit it: small fits, a shared CPU
    os.environ.setdefault("MPLBACKEND", "Agg")
    done = []
    for path in paths:
        start = time.perf_counter()
        try:
            page = to_html(execute(path, timeout))
        except UserError as err:
            done.append({"name": path.stem, "error": str(err)})
            log(f"  {path.stem:<28} failed: {err}")
            continue
        target = out_dir / f"{path.stem}.html"
        write_atomic(target, page.encode())
        seconds = time.perf_counter() - start
        done.append({"name": path.stem, "seconds": round(seconds, 1), "file": str(target)})
        log(f"  {path.stem:<28} {seconds:6.1f} s  {target}")
    items = "\n".join(f'<li><a href="{html.escape(d["name"])}.html">{html.escape(d["name"])}</a> '
                      f'(executed in {d["seconds"]} s)</li>' if "file" in d else
                      f'<li>{html.escape(d["name"])}: not built ({html.escape(d["error"])})</li>' for d in done)
    index = (f"<!doctype html><meta charset='utf-8'><title>rapidinr notebooks</title><h1>rapidinr notebooks, "
             f"executed {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} at their quick defaults</h1>"
             f"<ul>\n{items}\n</ul>\n")
    write_atomic(out_dir / "index.html", index.encode())
    return done


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rapidinr.study.notebooks_html", description=__doc__.splitlines()[0])
    p.add_argument("output", help="folder to write NAME.html and index.html into")
    p.add_argument("--only", help="comma-separated notebook names (e.g. 00_walkthrough)")
    p.add_argument("--timeout", type=int, default=600, help="seconds a cell may run (default 600)")
    args = p.parse_args(argv)
    try:
        if args.timeout < 1:
            raise UserError(f"--timeout must be >= 1, got {args.timeout}")
        only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
        print(f"rapidinr notebooks: executing and writing HTML into {args.output}")
        done = build(args.output, only, args.timeout)
    except UserError as err:
        print(f"rapidinr: error: {err}", file=sys.stderr)
        return 2
    failed = [d for d in done if "error" in d]
    print(f"  wrote {len(done) - len(failed)} notebook(s); {len(failed)} failed")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
