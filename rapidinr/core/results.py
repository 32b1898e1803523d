"""The one results writer: every results JSON has one schema (name, description, date, command,
hardware and versions, settings, results), written atomically.

Benchmarks, the CLI's ``train`` / ``bench`` / ``rd`` and the studies all write through
:func:`results_document` and :func:`write_results`, so any two results files can be compared
knowing what machine, versions and command produced each.
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import PIL
import torch

from rapidinr.core.files import write_atomic
from rapidinr.core.version import __version__


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict:
    """What ran the benchmark: CPU model and cores, GPU, versions of everything that matters."""
    import torchvision  # heavy: importing torchvision costs ~1 s

    info = {"cpu": _cpu_model(), "cpu_cores": os.cpu_count(),
            "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "rapidinr": __version__,
            "cuda": torch.version.cuda, "gpu": None}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1),
                    gpu_count=torch.cuda.device_count(), cudnn=torch.backends.cudnn.version())
    try:
        import nvidia.dali as dali  # optional: the [dali] extra

        info["dali"] = dali.__version__
    except Exception:
        info["dali"] = None
    info["pillow"] = PIL.__version__
    return info


def command() -> str:
    """The command line that is running (what to type to make the same file again)."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else ""


def results_document(name: str, description: str, settings: dict, results, **extra) -> dict:
    """The one results schema (CompressAI-style): name, description, date, command, hardware and
    versions, settings, results, plus any ``extra`` top-level keys a study adds."""
    return {"name": name, "description": description,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command(),
            "hardware": hardware(), "settings": settings, "results": results, **extra}


def write_results(path: str | Path, document: dict) -> Path:
    """Write a results document as indented JSON, atomically (parent folders made as needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(document, indent=2) + "\n").encode())
    return path
