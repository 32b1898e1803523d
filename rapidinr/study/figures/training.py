"""Fig. 7 (test accuracy against bytes per image) and Fig. 8 (training time per pipeline), from results JSON.

Fig. 7 reads a document whose ``results["variants"]`` is a list of
``{"label", "kind" ("inr" | "jpeg" | "original"), "bytes_per_image", "accuracy", "psnr"}``
(written by ``benchmarks/training_accuracy.py``); Fig. 8 reads ``rapidinr bench pipelines`` output
(``results["rows"]``: data, pipeline, workers, total_wall_s, data_s, step_s, ...).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from rapidinr.core.errors import UserError
from rapidinr.encoding.runner import encode
from rapidinr.sources.datasets import load_source
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


# What the paper reports for Figs. 7 and 8 (prose and anchors; its figures carry no table).
PAPER_FIG7 = ("the paper (CIFAR-10, ResNet-18): about 2 points lost on INR images;\n"
              "its public code: 90.5% on INR images against about 94% on the originals")
PAPER_FIG8 = ("the paper (A6000 GPU, 10 epochs): INR up to 6x faster than PyTorch with 1 worker,\n"
              "1.2x faster than DALI with 1 thread")
NOTE_RECT = (0, 0.12, 1, 1)  # tight_layout's area above the notes at the bottom of Fig. 8
CPU_NOTE = ("measured on a CPU: the model's step is slow here, so no loader can be the bottleneck;\n"
            "the paper's claim (a fast GPU step waiting for a CPU decoder) needs a GPU run")


LABEL_OFFSETS = [(0, -40), (0, 28), (0, -62), (0, 50)]  # points, below and above in turn


def accuracy_interval(accuracy: float, test_images: int | None) -> float:
    """Half-width (as a fraction) of the 95% interval of a test accuracy measured on ``test_images``
    images (binomial sampling of the test set; seed-to-seed variation is not in it). 0 when unknown."""
    if not test_images:
        return 0.0
    return 1.96 * (accuracy * (1 - accuracy) / test_images) ** 0.5


def seed_accuracies(variant: dict) -> list[float]:
    """The variant's accuracy per training seed (one value for a one-seed run)."""
    return list(variant.get("accuracy_per_seed") or [variant["accuracy"]])


def accuracy_bar(variant: dict, test_images: int | None) -> float:
    """Fig. 7's error bar (as a fraction): the sample std over seeds where a run has several, else the
    test-set interval of :func:`accuracy_interval` (the only spread a one-seed run knows)."""
    per_seed = torch.tensor(seed_accuracies(variant), dtype=torch.float64)  # (seeds,)
    if per_seed.numel() > 1:
        return float(per_seed.std())
    return accuracy_interval(variant["accuracy"], test_images)


def bar_basis(doc: dict) -> str:
    """What Fig. 7's bars are, in words, for a results document."""
    variants = _doc(doc)["results"]["variants"]
    seeds = min(len(seed_accuracies(v)) for v in variants) if variants else 1
    if seeds > 1:
        return f"bars: ± std over {seeds} training seeds (0..{seeds - 1}), points: their mean"
    test_images = _doc(doc).get("settings", {}).get("test_images")
    return f"bars: 95% interval from {test_images} test images (one seed)" if test_images else "one seed"


def accuracy_gap(variant: dict, reference: dict, test_images: int | None) -> tuple[float, float, str]:
    """``variant`` minus ``reference`` in accuracy points (negative = worse), the half-width of its 95%
    interval, and how that interval was found: paired by seed (Student t over the per-seed gaps) when
    both carry the same seeds, else from the test-set size of a one-seed run."""
    mine, theirs = seed_accuracies(variant), seed_accuracies(reference)
    if len(mine) > 1 and len(mine) == len(theirs):
        from scipy.stats import t  # ~0.3 s to import (comes with scikit-image); only this function needs it

        gaps = 100 * (torch.tensor(mine, dtype=torch.float64) - torch.tensor(theirs, dtype=torch.float64))  # (seeds,)
        half = float(t.ppf(0.975, gaps.numel() - 1) * gaps.std() / gaps.numel() ** 0.5)
        return float(gaps.mean()), half, f"paired over {gaps.numel()} seeds"
    diff = 100 * (variant["accuracy"] - reference["accuracy"])
    half = 100 * (accuracy_interval(variant["accuracy"], test_images) ** 2
                  + accuracy_interval(reference["accuracy"], test_images) ** 2) ** 0.5
    return diff, half, f"one seed, {test_images} test images"


def plot_accuracy_vs_bytes(source, ax=None, paper: bool = True):
    """Fig. 7: test accuracy (y, 0-100%) against bytes per image (x, log), INR variants, JPEG at the
    same sizes and the originals; each point labelled with its accuracy and PSNR, with the spread
    over training seeds (or, for a one-seed run, the 95% interval from the size of the test set),
    the chance level, and the paper's numbers (as text)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    settings = _doc(source).get("settings", {})
    test_images = settings.get("test_images")
    classes = settings.get("classes", 10)
    for kind, (marker, colour) in KIND_STYLE.items():
        points = [v for v in accuracy_points(source) if v["kind"] == kind]
        if not points:
            continue
        ax.errorbar([v["bytes_per_image"] for v in points], [100 * v["accuracy"] for v in points],
                    yerr=[100 * accuracy_bar(v, test_images) for v in points], fmt=marker,
                    color=colour, ms=8, capsize=3, label=kind, zorder=3)
    # labels placed round their points in turn (by bytes), so neighbours at similar sizes stay readable
    for k, v in enumerate(accuracy_points(source)):
        psnr = f", {v['psnr']:.1f} dB" if v.get("psnr") else ""
        ax.annotate(f"{v['label']}: {100 * v['accuracy']:.1f}%{psnr}", (v["bytes_per_image"], 100 * v["accuracy"]),
                    textcoords="offset points", xytext=LABEL_OFFSETS[k % len(LABEL_OFFSETS)], fontsize=7,
                    ha="center", arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6})
    ax.axhline(100 / classes, color="0.4", ls=":", label=f"chance ({100 / classes:.0f}%)")
    ax.set_ylim(0, 100)
    ax.set_xscale("log")
    ax.set_xlabel("bytes per image")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("ResNet-18 accuracy by training-set storage (Fig. 7)")
    ax.grid(True, alpha=0.3)
    ax.text(0.01, 0.99, bar_basis(source) + ("\n" + PAPER_FIG7 if paper else ""), transform=ax.transAxes, fontsize=7,
            va="top", color="0.25")
    ax.legend(fontsize=8, loc="lower right")
    return ax


def pipeline_table(source) -> dict[str, list[tuple[str, dict]]]:
    """Fig. 8 rows grouped by dataset: {data: [(label like 'jpeg/2w', row), ...]} in grid order."""
    out: dict[str, list] = {}
    for row in _doc(source)["results"]["rows"]:
        label = row["pipeline"] + (f"/{row['workers']}w" if row["pipeline"] in ("jpeg", "dali") else "")
        out.setdefault(row["data"], []).append((label, row))
    return out


def ran_on_gpu(source) -> bool:
    """Whether a results document was measured on a GPU (its ``hardware`` or ``settings`` say so)."""
    doc = _doc(source)
    return bool(doc.get("hardware", {}).get("gpu")) or str(doc.get("settings", {}).get("device", "")).startswith("cuda")


def has_loader_times(source) -> bool:
    """Whether the rows carry the loader-alone time (benchmarks/pipelines.py measures it)."""
    return any(row.get("loader_s") is not None for row in _doc(source)["results"]["rows"])


def plot_pipeline_times(source, axes=None, per_epoch: bool = False, paper: bool = True, loader_axes=None):
    """Fig. 8: training time per pipeline and worker count, one panel per dataset, bars split into
    step time and time waiting for data. ``loader_axes`` (one per dataset): the loader alone
    (decode and augment, no model) where measured, on its own scale. The paper's numbers as text;
    on a CPU run, a note that a CPU cannot show the paper's claim."""
    import matplotlib.pyplot as plt

    table = pipeline_table(source)
    if axes is None:
        rows_of_panels = 2 if has_loader_times(source) else 1
        _, grid = plt.subplots(rows_of_panels, max(len(table), 1), figsize=(4.5 * max(len(table), 1), 3.4 * rows_of_panels + 1),
                               squeeze=False)
        axes, loader_axes = grid[0], (grid[1] if rows_of_panels == 2 else None)
    for i, (ax, (data, rows)) in enumerate(zip(axes, table.items())):
        labels = [label for label, _ in rows]
        key = "mean_epoch_s" if per_epoch else "total_wall_s"
        total = [row[key] for _, row in rows]
        share = [row["data_s"] / max(row["data_s"] + row["step_s"], 1e-9) for _, row in rows]
        data_part = [t * s for t, s in zip(total, share)]
        ax.bar(labels, [t - d for t, d in zip(total, data_part)], color="tab:blue", label="model step")
        ax.bar(labels, data_part, bottom=[t - d for t, d in zip(total, data_part)], color="tab:orange",
               label="waiting for data")
        for k, t in enumerate(total):
            ax.text(k, t, f"{t:.1f}", ha="center", va="bottom", fontsize=7)
        ax.set_title(f"{data}: training")
        ax.set_ylabel("seconds per epoch" if per_epoch else "training time (s)")
        ax.tick_params(axis="x", rotation=30)
        loader = [(label, row.get("loader_s")) for label, row in rows if row.get("loader_s") is not None]
        if loader_axes is not None and loader:
            lax = loader_axes[i]
            lax.bar([label for label, _ in loader], [v for _, v in loader], color="white", edgecolor="0.3", hatch="///")
            for k, (_, v) in enumerate(loader):
                lax.text(k, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
            lax.set_title(f"{data}: loader alone (decode + augment, no model)", fontsize=9)
            lax.set_ylabel("seconds per epoch")
            lax.tick_params(axis="x", rotation=30)
    if len(table):
        axes[0].legend(fontsize=7)
        note = ([PAPER_FIG8] if paper else []) + ([] if ran_on_gpu(source) else [CPU_NOTE])
        if note:
            axes[0].figure.text(0.01, 0.005, "\n".join(note), fontsize=7, color="0.25", va="bottom")
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
        axes[0].figure.tight_layout(rect=NOTE_RECT)
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
    return UserError(f"{what} full-size: no results file {Path(results_dir) / names[0]} (nor a CPU run); {how}, "
                     "or use --quick")


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
                         "cpu_core_s": epoch.get("cpu_core_s"), "final_test_accuracy": run.get("test_accuracy"),
                         "loader_s": _loader_seconds(run, epoch)})
    return {**doc, "results": {"rows": rows}}


def split_source(source: str, split: str) -> str:
    """A folder holding ``train/`` and ``test/`` class folders (CIFAR-10 as JPEG files, say) -> the
    split's folder; any other SOURCE (``default``, ``cifar10:ROOT``, a flat folder) unchanged."""
    path = Path(source)
    if source != "default" and ":" not in source and path.is_dir() and (path / split).is_dir():
        return str(path / split)
    return source


def labelled_split(source: str, split: str, count: int, seed: int = 0):
    """``count`` labelled images of ``source``'s ``split`` (an ImageSet): the first ``count`` of the
    embedded default (as always), a seeded random choice from any other source, whose files are
    sorted by class. Asking for more images than the split holds is one clear error."""
    data = load_source(split_source(source, split), split=split)
    if data.labels is None:
        raise UserError(f"source {source!r}: its {split} images have no labels (use class subfolders)")
    if count > len(data):
        raise UserError(f"source {source!r} holds {len(data)} {split} images; {count} asked")
    if source == "default":
        return data.subset(0, count)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:count]
    return replace(data, images=data.images[order], labels=data.labels[order],
                   names=[data.names[i] for i in order.tolist()] if data.names else data.names)


def _loader_seconds(run: dict, epoch: dict) -> float | None:
    """The loader-alone time of a run, scaled to the epoch's images (None when not measured)."""
    alone = run.get("loader_only")
    if not alone or not alone.get("images"):
        return None
    return alone["seconds"] * epoch.get("images", alone["images"]) / alone["images"]


def tiny_accuracy_grid(device="cpu", images: int = 32, test_images: int = 64, encode_steps: int = 150,
                       batch_size: int = 16, epochs: int = 1, seed: int = 0, data: str = "default") -> dict:
    """A live Fig. 7 grid: originals, a 3x15 INR, JPEG at the INR's bytes, trained on ``images`` of
    ``data`` (the embedded Fashion-MNIST, or any labelled SOURCE such as a folder with train/ and
    test/ class folders). Same model, schedule and seed for all three; seconds on a CPU at the defaults."""
    train = labelled_split(data, "train", images, seed)
    test = labelled_split(data, "test", test_images, seed)
    classes = max(len(train.class_names), int(train.labels.max()) + 1)
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
        sets = TrainData(train.labels, classes, train.images.shape[1], test.images, test.labels, pixels, inr, label)
        result = run_training(pipeline, sets, cfg, tuple(train.images.shape[-2:]), device, progress=False)
        rows.append({"label": label, "kind": kind, "pipeline": pipeline, "bytes_per_image": round(size, 1),
                     "psnr": round(psnr, 3) if psnr is not None else None,
                     "accuracy": result["final_test_accuracy"], "train_s": result["total_wall_s"]})
    settings = {"data": data, "images": images, "test_images": test_images, "classes": classes,
                "encode_steps": encode_steps, "arch": "3x15", "batch_size": batch_size, "epochs": epochs, "device": str(device),
                "torch": torch.__version__}
    return {"name": "training-accuracy (tiny live grid)", "settings": settings, "results": {"variants": rows}}


def tiny_pipeline_grid(device="cpu", images: int = 32, batch_size: int = 16, data: str = "default") -> dict:
    """A live Fig. 8 grid: inr, tensor and jpeg (1 worker) for one short epoch (timing only), on the
    embedded Fashion-MNIST at 28x28 or on any labelled SOURCE at its own size."""
    train = labelled_split(data, "train", images)  # checks the source and the count
    size = tuple(train.images.shape[-2:])
    entry = f"{split_source(data, 'train')}@{size[0]}x{size[1]}"
    grid = GridConfig(("inr", "tensor", "jpeg"), (1,), epochs=1, limit=images, test_limit=32, encode_steps=0,
                      batch_size=batch_size, warmup=0)
    results = run_pipeline_grid([entry], grid, device, progress=False)
    for row in results["rows"]:  # name the dataset as the reader gave it
        row["data"] = f"{Path(data).name if data != 'default' else 'default'}@{size[0]}x{size[1]}"
    return {"name": "pipelines (tiny live grid)", "settings": {"data": data, "images": images, "batch_size": batch_size, "device": str(device)},
            "results": results}


def _committed(ctx, files: dict, what: str, how: str) -> tuple[dict, str, str | None]:
    """The committed results a figure draws: quick -> the CPU run; full -> the GPU run, else the CPU
    run with a note saying so (never a silent skip). Returns (document, source, note or None)."""
    if not ctx.quick:
        path = _find(ctx.results_dir, files[False])
        if path is not None:
            return _doc(path), str(path), None
    path = _find(ctx.results_dir, files[True])
    if path is not None:
        note = None if ctx.quick else (f"{what}: no GPU results ({Path(ctx.results_dir) / files[False][0]}); "
                                       f"drew the committed CPU run {path.name} instead ({how})")
        return _doc(path), str(path), note
    if not ctx.quick:
        raise _missing(what, ctx.results_dir, files[False], how)
    return {}, "", None


def accuracy_document(ctx) -> tuple[dict, str, str | None]:
    doc, source, note = _committed(ctx, ACCURACY_FILES, "Fig. 7", "run benchmarks/training_accuracy.py on a GPU")
    if source:
        return doc, source, note
    return tiny_accuracy_grid(ctx.device, seed=ctx.seed), "computed (tiny grid: accuracy not meaningful)", None


def pipelines_document(ctx) -> tuple[dict, str, str | None]:
    doc, source, note = _committed(ctx, PIPELINE_FILES, "Fig. 8", "run `rapidinr bench pipelines` on a GPU")
    if source:
        return pipeline_rows(doc), source, note
    return tiny_pipeline_grid(ctx.device), "computed (tiny grid)", None


def _make_fig7(ctx):
    from matplotlib.figure import Figure

    doc, source, note = accuracy_document(ctx)
    fig = Figure(figsize=(7, 4.6))
    ax = fig.add_subplot()
    plot_accuracy_vs_bytes(doc, ax=ax)
    settings = doc.get("settings", {})
    ax.set_title(f"Fig. 7: ResNet-18 test accuracy by how the training set is stored\n"
                 f"({settings.get('images', '?')} train images, {settings.get('epochs', '?')} epoch(s); "
                 f"{Path(source).name if source.endswith('.json') else source}"
                 f"{'; a CPU run: no GPU results committed' if note else ''})", fontsize=9)
    ax.margins(x=0.25)
    return fig, {"source": source, "document": doc, "note": note}


def pipeline_figure(doc: dict, panels: int):
    """A Figure for Fig. 8: a row of training panels, a row of loader-alone panels where measured,
    and room at the bottom for the notes. Returns (fig, axes, loader_axes or None)."""
    from matplotlib.figure import Figure

    rows = 2 if has_loader_times(doc) else 1
    fig = Figure(figsize=(max(4.5 * panels, 8), 3.6 * rows + 1.4))
    grid = fig.subplots(rows, panels, squeeze=False)
    return fig, grid[0], (grid[1] if rows == 2 else None)


def _make_fig8(ctx):
    doc, source, note = pipelines_document(ctx)
    table = pipeline_table(doc)
    if not table:
        raise UserError(f"Fig. 8: {source} holds no pipeline rows")
    fig, axes, loader_axes = pipeline_figure(doc, len(table))
    plot_pipeline_times(doc, axes=axes, per_epoch=True, loader_axes=loader_axes)
    fig.suptitle(f"Fig. 8: ResNet-18 time per epoch by input pipeline "
                 f"({Path(source).name if source.endswith('.json') else source}"
                 f"{'; a CPU run: no GPU results committed' if note else ''})", fontsize=10)
    fig.tight_layout(rect=NOTE_RECT)
    return fig, {"source": source, "document": doc, "note": note}


PRODUCERS = [
    Producer("fig7_accuracy", "Fig. 7", "ResNet-18 test accuracy against bytes per image: originals, INR, JPEG",
             _make_fig7),
    Producer("fig8_training_time", "Fig. 8", "Training time per epoch by pipeline, split into step and data time",
             _make_fig8),
]
