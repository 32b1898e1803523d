"""Layer 6, study: baselines, rate–distortion sweeps, architecture search, the paper-style reference
fitter, the pipeline grid, figures, widgets and the demo. Depends on the layers below.

This package is also the notebooks' facade: a notebook imports ``rapidinr`` and names from here
only (``from rapidinr.study import widgets, load_sample_crops, plot_rd``), so the modules behind
them can move without breaking teaching material. Names load on first use (PEP 562), so
``import rapidinr.study.rd`` needs neither ipywidgets nor matplotlib.
"""
from __future__ import annotations

import importlib

# public name → (module, attribute in it; None for the module itself)
_EXPORTS = {
    # modules a notebook drives
    "widgets": ("rapidinr.study.widgets", None),
    "rd": ("rapidinr.study.rd", None),
    "search": ("rapidinr.study.search", None),
    "baselines": ("rapidinr.study.baselines", None),
    # images
    "load_default": ("rapidinr.sources.datasets", "load_default"),
    "load_sample_crops": ("rapidinr.sources.datasets", "load_sample_crops"),
    "load_source": ("rapidinr.sources.datasets", "load_source"),
    # measuring
    "psnr": ("rapidinr.core.metrics", "psnr"),
    "to_uint8": ("rapidinr.core.metrics", "to_uint8"),
    "measure_weights": ("rapidinr.codec.measure", "measure_weights"),
    # compression settings and steps
    "CompressConfig": ("rapidinr.encoding.compress", "CompressConfig"),
    "compress": ("rapidinr.encoding.compress", "compress"),
    "PruneConfig": ("rapidinr.codec.prune", "PruneConfig"),
    "parse_schedule": ("rapidinr.codec.prune", "parse_schedule"),
    "QuantConfig": ("rapidinr.codec.quantize", "QuantConfig"),
    "PackedStore": ("rapidinr.codec.store", "PackedStore"),
    # learned inits and their fit settings
    "resolve_init": ("rapidinr.encoding.learned_init", "resolve_init"),
    "REFERENCE": ("rapidinr.encoding.init_tuning", "REFERENCE"),
    "final_psnr": ("rapidinr.encoding.init_tuning", "final_psnr"),
    "steps_to_reach": ("rapidinr.encoding.init_tuning", "steps_to_reach"),
    "traced_fit": ("rapidinr.encoding.init_tuning", "traced_fit"),
    # training
    "AugmentConfig": ("rapidinr.training.augment", "AugmentConfig"),
    "InrLoader": ("rapidinr.training.loaders", "InrLoader"),
    "resnet18": ("rapidinr.training.models", "resnet18"),
    # figures
    "FIG3_VARIANTS": ("rapidinr.study.figures.rate_distortion", "FIG3_VARIANTS"),
    "plot_rd": ("rapidinr.study.figures.rate_distortion", "plot_rd"),
    "plot_standing": ("rapidinr.study.figures.rate_distortion", "plot_standing"),
    "cap_table": ("rapidinr.study.rd", "cap_table"),
    "plot_weights": ("rapidinr.study.figures.weights", "plot_weights"),
    "weight_samples": ("rapidinr.study.figures.weights", "weight_samples"),
    "plot_layers": ("rapidinr.study.figures.search", "plot_layers"),
    "plot_w0": ("rapidinr.study.figures.search", "plot_w0"),
    "plot_lr": ("rapidinr.study.figures.search", "plot_lr"),
    "plot_residuals": ("rapidinr.study.figures.residuals", "plot_residuals"),
    "residual_data": ("rapidinr.study.figures.residuals", "residual_data"),
    "ACCURACY_FILES": ("rapidinr.study.figures.training", "ACCURACY_FILES"),
    "PIPELINE_FILES": ("rapidinr.study.figures.training", "PIPELINE_FILES"),
    "tiny_accuracy_grid": ("rapidinr.study.figures.training", "tiny_accuracy_grid"),
    "tiny_pipeline_grid": ("rapidinr.study.figures.training", "tiny_pipeline_grid"),
    "pipeline_rows": ("rapidinr.study.figures.training", "pipeline_rows"),
    "accuracy_gap": ("rapidinr.study.figures.training", "accuracy_gap"),
    "seed_accuracies": ("rapidinr.study.figures.training", "seed_accuracies"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rapidinr.study' has no attribute {name!r}")
    module_name, attribute = _EXPORTS[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
