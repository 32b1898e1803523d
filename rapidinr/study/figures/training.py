"""Fig. 7 (test accuracy against bytes per image) and Fig. 8 (training time per pipeline), from results JSON.

Fig. 7 reads a document whose ``results["variants"]`` is a list of
``{"label", "kind" ("inr" | "jpeg" | "original"), "bytes_per_image", "accuracy", "psnr"}``
(written by ``benchmarks/training_accuracy.py``); Fig. 8 reads ``rapidinr bench pipelines`` output
(``results["rows"]``: data, pipeline, workers, total_wall_s, data_s, step_s, ...).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from rapidinr.core.errors import UserError
from rapidinr.encoding.runner import encode
from rapidinr.sources.datasets import load_default
from rapidinr.study import baselines
from rapidinr.study.figures.registry import Producer
from rapidinr.study.grid import GridConfig, run_pipeline_grid
from rapidinr.training.loop import TrainConfig, TrainData, run_training

KIND_STYLE = {"inr": ("o", "tab:blue"), "jpeg": ("s", "tab:orange"), "original": ("*", "tab:green")}


def _doc(source) -> dict:
    if isinstance(source, dict):
        return source
    return json.loads(Path(source).read_text())


def accuracy_points(source) -> list[dict]:
    """The Fig. 7 variants, sorted by bytes per image."""
    return sorted(_doc(source)["results"]["variants"], key=lambda v: v["bytes_per_image"] or 0)


def plot_accuracy_vs_bytes(source, ax=None):
    """Fig. 7: test accuracy (y) against bytes per image (x, log), INR variants, JPEG at the same
    sizes and the originals; each point labelled with its accuracy and PSNR."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for kind, (marker, colour) in KIND_STYLE.items():
        points = [v for v in accuracy_points(source) if v["kind"] == kind]
        if not points:
            continue
        ax.scatter([v["bytes_per_image"] for v in points], [100 * v["accuracy"] for v in points],
                   marker=marker, color=colour, s=60, label=kind, zorder=3)
        for v in points:
            psnr = f"\n{v['psnr']:.1f} dB" if v.get("psnr") else ""
            ax.annotate(f"{v['label']}\n{100 * v['accuracy']:.1f}%{psnr}", (v["bytes_per_image"], 100 * v["accuracy"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("bytes per image")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("ResNet-18 accuracy by training-set storage (Fig. 7)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return ax


def pipeline_table(source) -> dict[str, list[tuple[str, dict]]]:
    """Fig. 8 rows grouped by dataset: {data: [(label like 'jpeg/2w', row), ...]} in grid order."""
    out: dict[str, list] = {}
    for row in _doc(source)["results"]["rows"]:
        label = row["pipeline"] + (f"/{row['workers']}w" if row["pipeline"] in ("jpeg", "dali") else "")
        out.setdefault(row["data"], []).append((label, row))
    return out


def plot_pipeline_times(source, axes=None, per_epoch: bool = False):
    """Fig. 8: training time per pipeline and worker count, one panel per dataset, bars split into
    data time and step time."""
    import matplotlib.pyplot as plt

    table = pipeline_table(source)
    if axes is None:
        _, axes = plt.subplots(1, max(len(table), 1), figsize=(4.5 * max(len(table), 1), 3.8), squeeze=False)
        axes = axes[0]
    for ax, (data, rows) in zip(axes, table.items()):
        labels = [label for label, _ in rows]
        key = "mean_epoch_s" if per_epoch else "total_wall_s"
        total = [row[key] for _, row in rows]
        share = [row["data_s"] / max(row["data_s"] + row["step_s"], 1e-9) for _, row in rows]
        data_part = [t * s for t, s in zip(total, share)]
        ax.bar(labels, [t - d for t, d in zip(total, data_part)], color="tab:blue", label="step")
        ax.bar(labels, data_part, bottom=[t - d for t, d in zip(total, data_part)], color="tab:orange",
               label="waiting for data")
        for i, t in enumerate(total):
            ax.text(i, t, f"{t:.1f}", ha="center", va="bottom", fontsize=7)
        ax.set_title(data)
        ax.set_ylabel("seconds per epoch" if per_epoch else "training time (s)")
        ax.tick_params(axis="x", rotation=45)
    if len(table):
        axes[0].legend()
    return axes


def save_figures(accuracy_json=None, pipelines_json=None, out_dir: str | Path = ".") -> list[Path]:
    """Write fig7-accuracy.png and/or fig8-pipelines.png into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if accuracy_json is not None:
        ax = plot_accuracy_vs_bytes(accuracy_json)
        path = out_dir / "fig7-accuracy.png"
        ax.figure.tight_layout()
        ax.figure.savefig(path, dpi=120)
        plt.close(ax.figure)
        written.append(path)
    if pipelines_json is not None:
        axes = plot_pipeline_times(pipelines_json)
        path = out_dir / "fig8-pipelines.png"
        axes[0].figure.tight_layout()
        axes[0].figure.savefig(path, dpi=120)
        plt.close(axes[0].figure)
        written.append(path)
    return written


# -- `rapidinr figures` (Figs. 7, 8) --------------------------------------------------------------
# Quick: the committed CPU results (benchmarks/training_accuracy.py, benchmarks/pipelines.py) when
# present, else a tiny live grid (32 images, one short epoch: seconds; its accuracy means nothing,
# only that the path works). Full: the committed GPU results, else a clear error naming the file.
ACCURACY_FILES = {True: ("training-accuracy-cpu.json", "training_accuracy-cpu.json"),
                  False: ("training-accuracy-cuda.json", "training_accuracy-cuda.json")}
PIPELINE_FILES = {True: ("pipelines-cpu.json",), False: ("pipelines-cuda.json", "bench-pipelines-cuda.json")}


def _find(results_dir, names) -> Path | None:
    for name in names:
        path = Path(results_dir) / name
        if path.is_file():
            return path
    return None


def _missing(what: str, results_dir, names, how: str):
    return UserError(f"{what} full-size: no results file {Path(results_dir) / names[0]}; {how}, or use --quick")


def pipeline_rows(doc: dict) -> dict:
    """A pipelines results document in the ``results["rows"]`` shape :func:`plot_pipeline_times` reads.

    ``rapidinr bench pipelines`` writes rows already; benchmarks/pipelines.py writes
    ``results["sizes"][HxW]["runs"][NAME]["epoch"]`` (NAME like ``jpeg-1w``): converted here."""
    results = doc["results"]
    if "rows" in results:
        return doc
    rows = []
    for size, block in results.get("sizes", {}).items():
        for name, run in block["runs"].items():
            pipeline, _, workers = name.partition("-")
            epoch = run["epoch"]
            rows.append({"data": f"default@{size}", "pipeline": pipeline,
                         "workers": int(workers.rstrip("w")) if workers else 0,
                         "total_wall_s": epoch["wall_s"], "mean_epoch_s": epoch["wall_s"], "data_s": epoch["data_s"],
                         "step_s": epoch["step_s"], "images_per_s": epoch.get("images_per_s"),
                         "cpu_core_s": epoch.get("cpu_core_s"), "final_test_accuracy": run.get("test_accuracy")})
    return {**doc, "results": {"rows": rows}}


def tiny_accuracy_grid(device="cpu", images: int = 32, test_images: int = 64, encode_steps: int = 150,
                       batch_size: int = 16, epochs: int = 1, seed: int = 0) -> dict:
    """A live Fig. 7 grid on the embedded default: originals, a 3x15 INR, JPEG at the INR's bytes.
    Same model, schedule and seed for all three; seconds on a CPU at the defaults."""
    train = load_default("train").subset(0, images)
    test = load_default("test").subset(0, test_images)
    inrs = encode(train.images, "3x15", steps=encode_steps, labels=train.labels, progress=False, device=device,
                  seed=seed)
    nbytes = inrs.info()["bytes_per_image"]
    jpg = baselines.jpeg_at_budget(train.images, nbytes)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, warmup_batches=0, eval_batch=256, seed=seed)
    variants = [("original", "original", "tensor", train.images, None, float(train.images[0].numel()), None),
                ("inr-fp32", "inr", "inr", None, inrs, nbytes, float(inrs.psnr.mean())),
                ("jpeg@inr-fp32", "jpeg", "tensor", jpg.images, None, float(jpg.bytes.double().mean()),
                 float(jpg.psnr.mean()))]
    rows = []
    for label, kind, pipeline, pixels, inr, size, psnr in variants:
        data = TrainData(train.labels, 10, train.images.shape[1], test.images, test.labels, pixels, inr, label)
        result = run_training(pipeline, data, cfg, tuple(train.images.shape[-2:]), device, progress=False)
        rows.append({"label": label, "kind": kind, "pipeline": pipeline, "bytes_per_image": round(size, 1),
                     "psnr": round(psnr, 3) if psnr is not None else None,
                     "accuracy": result["final_test_accuracy"], "train_s": result["total_wall_s"]})
    settings = {"images": images, "test_images": test_images, "encode_steps": encode_steps, "arch": "3x15",
                "batch_size": batch_size, "epochs": epochs, "torch": torch.__version__}
    return {"name": "training-accuracy (tiny live grid)", "settings": settings, "results": {"variants": rows}}


def tiny_pipeline_grid(device="cpu", images: int = 32, batch_size: int = 16) -> dict:
    """A live Fig. 8 grid: inr, tensor and jpeg (1 worker) for one short epoch (timing only)."""
    grid = GridConfig(("inr", "tensor", "jpeg"), (1,), epochs=1, limit=images, test_limit=32, encode_steps=0,
                      batch_size=batch_size, warmup=0)
    results = run_pipeline_grid(["default@28x28"], grid, device, progress=False)
    return {"name": "pipelines (tiny live grid)", "settings": {"images": images, "batch_size": batch_size},
            "results": results}


def accuracy_document(ctx) -> tuple[dict, str]:
    path = _find(ctx.results_dir, ACCURACY_FILES[ctx.quick])
    if path is not None:
        return _doc(path), str(path)
    if not ctx.quick:
        raise _missing("Fig. 7", ctx.results_dir, ACCURACY_FILES[False], "run benchmarks/training_accuracy.py on a GPU")
    return tiny_accuracy_grid(ctx.device, seed=ctx.seed), "computed (tiny grid: accuracy not meaningful)"


def pipelines_document(ctx) -> tuple[dict, str]:
    path = _find(ctx.results_dir, PIPELINE_FILES[ctx.quick])
    if path is not None:
        return pipeline_rows(_doc(path)), str(path)
    if not ctx.quick:
        raise _missing("Fig. 8", ctx.results_dir, PIPELINE_FILES[False], "run `rapidinr bench pipelines` on a GPU")
    return tiny_pipeline_grid(ctx.device), "computed (tiny grid)"


def _make_fig7(ctx):
    from matplotlib.figure import Figure

    doc, source = accuracy_document(ctx)
    fig = Figure(figsize=(7, 4.6))
    ax = fig.add_subplot()
    plot_accuracy_vs_bytes(doc, ax=ax)
    settings = doc.get("settings", {})
    ax.set_title(f"Fig. 7: ResNet-18 test accuracy by how the training set is stored\n"
                 f"({settings.get('images', '?')} train images, {settings.get('epochs', '?')} epoch(s); "
                 f"{Path(source).name if source.endswith('.json') else source})", fontsize=9)
    ax.margins(x=0.25, y=0.2)
    return fig, {"source": source, "document": doc}


def _make_fig8(ctx):
    from matplotlib.figure import Figure

    doc, source = pipelines_document(ctx)
    table = pipeline_table(doc)
    if not table:
        raise UserError(f"Fig. 8: {source} holds no pipeline rows")
    fig = Figure(figsize=(4.5 * len(table), 4.2))
    axes = fig.subplots(1, len(table), squeeze=False)[0]
    plot_pipeline_times(doc, axes=axes, per_epoch=True)
    fig.suptitle(f"Fig. 8: ResNet-18 time per epoch by input pipeline "
                 f"({Path(source).name if source.endswith('.json') else source})", fontsize=10)
    fig.tight_layout()
    return fig, {"source": source, "document": doc}


PRODUCERS = [
    Producer("fig7_accuracy", "Fig. 7", "ResNet-18 test accuracy against bytes per image: originals, INR, JPEG",
             _make_fig7),
    Producer("fig8_training_time", "Fig. 8", "Training time per epoch by pipeline, split into step and data time",
             _make_fig8),
]
