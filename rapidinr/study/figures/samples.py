"""The small sets the Fig. 3, 4 and 6 producers share: photo crops, one fit, its compressed variant.

Quick mode (seconds on one CPU core): 16 random 32×32 crops of scikit-image's bundled photos, a
3x15 SIREN (the paper's CIFAR-10 network), 200 Adam steps at 3e-3. Full mode: 64 crops of 64×64,
a 4x24 SIREN, 2000 steps at 1e-3 (minutes on a GPU). The fit is made once per process and
shared by every figure that asks for it (``rapidinr figures`` draws several from one fit).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from rapidinr.codec.inrset import INRSet
from rapidinr.codec.measure import measure_weights
from rapidinr.codec.prune import PRESETS, PruneConfig, Schedule
from rapidinr.codec.quantize import QuantConfig
from rapidinr.core.config import Arch, FitConfig
from rapidinr.encoding.compress import CompressConfig, compress
from rapidinr.encoding.fit import fit
from rapidinr.sources.datasets import load_sample_crops

# PSNR → pruning ratio for the quick fits. The paper's Eq. 2 (cifar10 preset: 0 below 30 dB) would
# prune nothing after 200 steps, so the quick schedule starts lower; full mode uses the paper's.
QUICK_SCHEDULE = Schedule(((20.0, 0.1), (28.0, 0.3)), "quick: 20:0.1,28:0.3")


@dataclass(frozen=True)
class SampleSettings:
    """Which crops, which SIREN, how long: ``quick()`` for a CPU, ``full()`` for a GPU."""

    images: int = 16
    size: int = 32
    arch: str = "3x15"
    steps: int = 200
    lr: float = 3e-3
    retrain_steps: int = 60
    retrain_lr: float = 1e-3
    schedule: str = "quick"  # "quick" (QUICK_SCHEDULE) or a preset name of rapidinr.codec.prune.PRESETS
    qualities: tuple[int, ...] = (5, 10, 20, 30, 50, 70, 90, 95)
    rd_archs: tuple[str, ...] = ("2x10", "3x15", "3x24")  # Fig. 3: one rate point per architecture

    @staticmethod
    def quick() -> "SampleSettings":
        return SampleSettings()

    @staticmethod
    def full() -> "SampleSettings":
        return SampleSettings(images=64, size=64, arch="4x24", steps=2000, lr=1e-3, retrain_steps=1000,
                              retrain_lr=5e-4, schedule="flowers102",
                              qualities=(1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100),
                              rd_archs=("3x16", "4x24", "5x32", "6x40"))

    def prune_config(self) -> PruneConfig:
        schedule = QUICK_SCHEDULE if self.schedule == "quick" else PRESETS[self.schedule]
        return PruneConfig(schedule=schedule, retrain_steps=self.retrain_steps, retrain_lr=self.retrain_lr)

    def fit_config(self, seed: int = 0) -> FitConfig:
        return FitConfig(steps=self.steps, lr=self.lr, seed=seed)

    def to_json(self) -> dict:
        return {"images": self.images, "size": self.size, "arch": self.arch, "steps": self.steps, "lr": self.lr,
                "retrain_steps": self.retrain_steps, "retrain_lr": self.retrain_lr, "schedule": self.schedule,
                "qualities": list(self.qualities), "rd_archs": list(self.rd_archs),
                "source": f"sample-crops:{self.size}x{self.size} (scikit-image photos)"}


def settings_for(quick: bool) -> SampleSettings:
    return SampleSettings.quick() if quick else SampleSettings.full()


@functools.lru_cache(maxsize=4)
def crops(images: int, size: int, seed: int = 0) -> torch.Tensor:
    """(N, 3, size, size) uint8 random crops of the bundled photos (offline)."""
    return load_sample_crops(images, (size, size), seed=seed).images


@functools.lru_cache(maxsize=4)
def fitted(settings: SampleSettings, device: str = "cpu", seed: int = 0):
    """(images, fp32 INRSet, pruned + 8-bit layer-wise INRSet), all on the CPU; made once per process."""
    images = crops(settings.images, settings.size, seed)
    arch = Arch.parse(settings.arch, images.shape[1])
    fit_cfg = settings.fit_config(seed)
    result = fit(images, arch, fit_cfg, device=device, progress=False)
    fp32 = INRSet(result.params.cpu(), arch, settings.size, settings.size,
                  psnr=measure_weights(result.params.cpu(), arch, images, device))
    packed = compress(images, arch, fit_cfg, CompressConfig(prune=settings.prune_config(), quant=QuantConfig(8)),
                      device, init=result.params, progress=False).to("cpu")
    return images, fp32, packed
