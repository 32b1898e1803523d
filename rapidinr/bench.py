"""The one timing harness: synchronized timers, CPU core-seconds, hardware and versions, results JSON.

Every pipeline is timed the same way (see :class:`EpochTimer`): the wait for the next batch is
*data time*, the forward/backward/update is *step time*, both measured between device
synchronizations (CUDA events on a GPU, ``perf_counter`` on the CPU); wall time per epoch is the
whole loop. CPU core-seconds count the process, its threads (DALI) and its worker processes
(DataLoader), read from ``/proc`` so live persistent workers are counted too.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import time
from pathlib import Path

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Elapsed seconds between marks, synchronized with the device.

    On a GPU each mark records a CUDA event; the intervals are read once at the end (one sync per
    interval is still taken, so that the split between data and step is honest)."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)

    def now(self) -> float:
        synchronize(self.device)
        return time.perf_counter()


class CudaEventPair:
    """A CUDA-event stopwatch (GPU time of the work queued between start() and stop())."""

    def __init__(self):
        self.begin = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def start(self):
        self.begin.record()

    def stop(self) -> float:
        self.end.record()
        self.end.synchronize()
        return self.begin.elapsed_time(self.end) / 1000


class EpochTimer:
    """Accumulates data time and step time over one epoch, plus its wall time and CPU seconds."""

    def __init__(self, device: torch.device):
        self.clock = Clock(device)
        self.device = torch.device(device)
        self.data = self.step = 0.0
        self.images = self.batches = 0
        self.gpu_step = 0.0

    def __enter__(self):
        self.cpu0 = cpu_core_seconds()
        self.t0 = self.mark = self.clock.now()
        return self

    def data_done(self) -> None:
        t = self.clock.now()
        self.data += t - self.mark
        self.mark = t
        if self.device.type == "cuda":
            self._pending = CudaEventPair()
            self._pending.start()

    def step_done(self, images: int) -> None:
        if self.device.type == "cuda":
            self.gpu_step += self._pending.stop()  # CUDA-event time of the step's kernels
        t = self.clock.now()
        self.step += t - self.mark
        self.mark = t
        self.images += images
        self.batches += 1

    def __exit__(self, *exc):
        self.wall = self.clock.now() - self.t0
        self.cpu = cpu_core_seconds() - self.cpu0
        return False

    def result(self) -> dict:
        return {"wall_s": round(self.wall, 4), "data_s": round(self.data, 4), "step_s": round(self.step, 4),
                "images": self.images, "batches": self.batches,
                "images_per_s": round(self.images / self.wall, 2) if self.wall > 0 else None,
                "cpu_core_s": round(self.cpu, 3),
                "gpu_step_s": round(self.gpu_step, 4) if self.device.type == "cuda" else None}


# -- CPU core-seconds of this process and its children ------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def timed(fn):
    """Run ``fn()`` on the CPU; returns (its value, wall seconds, CPU seconds of this process).
    On a machine shared with other jobs, CPU seconds are the steadier measure of the work."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            out += [int(c) for c in text]
    except OSError:
        pass
    return out


def cpu_core_seconds() -> float:
    """User + system CPU seconds of this process, its live descendants, and reaped children."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime + reaped.ru_utime + reaped.ru_stime
    if not Path("/proc/self/stat").exists():
        return total
    stack, seen = _children(os.getpid()), set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _proc_cpu(pid)
        stack += _children(pid)
    return total


# -- hardware, versions, results JSON ---------------------------------------------------------------
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
    import torchvision

    from . import __version__

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
        import nvidia.dali as dali

        info["dali"] = dali.__version__
    except Exception:
        info["dali"] = None
    try:
        import PIL

        info["pillow"] = PIL.__version__
    except ImportError:
        pass
    return info


def results_document(name: str, description: str, settings: dict, results) -> dict:
    """The results JSON every benchmark writes (CompressAI-style: name, description, results)."""
    return {"name": name, "description": description,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "hardware": hardware(), "settings": settings, "results": results}


def write_results(path: str | Path, document: dict) -> Path:
    from .fileformat import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(document, indent=2) + "\n").encode())
    return path


# -- the Fig. 8 grid: pipelines × worker counts × datasets --------------------------------------------
PHOTOS = "photos"  # crops of scikit-image's photos, labelled by the photo they come from (offline, RGB)


def grid_arch(size: tuple[int, int]) -> str:
    """The paper's SIREN for a training size: 3x15 for CIFAR-sized images, 10x40 for ImageNet-sized."""
    side = max(size)
    return "3x15" if side <= 64 else ("10x32" if side <= 128 else "10x40")


def parse_grid_data(text: str):
    """``SOURCE@HxW[#ARCH]`` → (source, (H, W) or None, arch or None)."""
    from .data import parse_size

    body, _, arch = str(text).partition("#")
    source, at, size = body.rpartition("@")
    if not at:
        source, size = body, None
    if not source:
        from .errors import UserError

        raise UserError(f"--data {text!r}: expected SOURCE[@HxW][#ARCH], e.g. default@28x28 or photos@224x224")
    return source, parse_size(size) if size else None, arch or None


def load_grid_images(source: str, size, limit: int | None, split: str):
    """Labelled uint8 images for a grid entry: ``photos`` (crops labelled by photo) or any SOURCE."""
    from .data import load_sample_crops, load_source

    if source == PHOTOS:
        size = size or (32, 32)
        count = limit or 1024
        crops = load_sample_crops(count, size, seed=0 if split == "train" else 1,
                                  downscale=4 if max(size) <= 96 else 1)
        labels = torch.arange(count) % 9  # crops cycle through the nine photos
        return crops.images, labels, 9
    data = load_source(source, size=size, split=split, limit=limit)
    if data.labels is None:
        from .errors import UserError

        raise UserError(f"--data {source}: has no labels (use a labelled source, or 'photos')")
    return data.images, data.labels, max(len(data.class_names), int(data.labels.max()) + 1)


def run_pipeline_grid(entries: list[str], pipelines: list[str], workers: list[int], epochs: int = 1,
                      device="cpu", limit: int | None = 1024, test_limit: int | None = 500,
                      encode_steps: int = 100, batch_size: int = 128, jpeg_quality: int = 90,
                      rinr: dict | None = None, progress: bool = True, warmup: int = 3,
                      deadline: float | None = None) -> dict:
    """Time every pipeline (at every worker count where it has workers) on every dataset entry.

    For the inr pipeline each entry needs a .rinr: given in ``rinr`` (entry → path) or encoded here
    with ``encode_steps`` Adam steps (the decode cost does not depend on how well the weights fit,
    so a short fit times honestly; its accuracy is then not meaningful). Returns
    ``{"rows": [...], "skipped": [...]}``. Runs that would start after ``deadline`` (a
    ``time.perf_counter()`` value) are skipped and listed as such.
    """
    from . import encode, load, loaders
    from .train import TrainConfig, TrainData, run_training

    import tempfile

    device = torch.device(device)
    rows, skipped = [], []
    scratch = tempfile.TemporaryDirectory(prefix="rapidinr-grid-")  # JPEG files, shared by the runs
    workdir = Path(scratch.name)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, warmup_batches=warmup)
    for entry in entries:
        source, size, arch = parse_grid_data(entry)
        images, labels, classes = load_grid_images(source, size, limit, "train")
        test_images, test_labels, _ = load_grid_images(source, size, test_limit, "test")
        size = size or tuple(images.shape[-2:])
        arch = arch or grid_arch(size)
        data = TrainData(labels, classes, images.shape[1], test_images, test_labels, images, None, entry)
        if "inr" in pipelines:
            if rinr and entry in rinr:
                inrs = load(rinr[entry], device)
                fit_note = f"loaded {rinr[entry]}"
            elif encode_steps == 0:  # timing only: decoding costs the same whatever the weights
                from .config import Arch
                from .inrset import INRSet
                from .siren import init_params

                arch_obj = Arch.parse(arch, images.shape[1])
                inrs = INRSet(init_params(arch_obj, range(len(labels))), arch_obj, size[0], size[1],
                              labels).to(device)
                fit_note = "not fitted (SIREN init weights): timing only, accuracy not meaningful"
            else:
                start = time.perf_counter()
                inrs = encode(images, arch, steps=encode_steps, device=device, labels=labels, progress=progress,
                              memory_budget_mb=4096 if device.type == "cuda" else 1024)
                fit_note = f"encoded here, {encode_steps} steps, {time.perf_counter() - start:.1f} s"
            data.inrs = inrs
            finite = inrs.psnr[torch.isfinite(inrs.psnr)]
            psnr = float(finite.mean()) if finite.numel() else float("nan")
        for pipeline in pipelines:
            counts = workers if pipeline in loaders.WORKER_PIPELINES else [0]
            for count in counts:
                reason = _skip_reason(pipeline, count, device)
                if reason is None and deadline is not None and time.perf_counter() > deadline:
                    reason = "time budget spent"
                if reason:
                    skipped.append({"data": entry, "pipeline": pipeline, "workers": count, "reason": reason})
                    continue
                if progress:
                    print(f"[grid] {entry} {pipeline} workers={count}", flush=True)
                result = run_training(pipeline, data, cfg, size, device, count, jpeg_quality, progress=False,
                                      workdir=workdir / f"data{entries.index(entry)}")
                row = {"data": entry, "size": list(size), "pipeline": pipeline, "workers": count,
                       **{k: result[k] for k in ("total_wall_s", "mean_epoch_s", "data_s", "step_s",
                                                 "cpu_core_s", "images_per_s", "final_test_accuracy")},
                       "epochs": result["epochs"], "train_images": int(labels.numel())}
                if pipeline == "inr":
                    row.update(arch=inrs.arch.name, inr_psnr=round(psnr, 3) if psnr == psnr else None, inr_fit=fit_note)
                rows.append(row)
                if progress:
                    print(f"[grid]   {row['total_wall_s']:.2f} s, {row['images_per_s']:.0f} img/s, "
                          f"data {row['data_s']:.2f} s, step {row['step_s']:.2f} s, {row['cpu_core_s']:.1f} CPU core-s",
                          flush=True)
    scratch.cleanup()
    return {"rows": rows, "skipped": skipped}


def _skip_reason(pipeline: str, workers: int, device: torch.device) -> str | None:
    from . import loaders

    if pipeline == "nvjpeg" and device.type != "cuda":
        return "nvjpeg needs a CUDA GPU"
    if pipeline == "dali" and not loaders.dali_available():
        return f"DALI not installed ({loaders.DALI_INSTALL})"
    return None
