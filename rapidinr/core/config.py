"""Frozen configuration dataclasses: the architecture and the fitting settings.

The library takes these objects, never an argparse namespace.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from rapidinr.core.errors import UserError

# SIREN's frequency for the sine layers (Sitzmann et al. 2020, Sec. 3.2; the paper's Sec. V-B
# confirms 30 as the best value for image INRs).
DEFAULT_W0 = 30.0


@dataclass(frozen=True)
class Arch:
    """A SIREN: ``layers`` sine layers of width ``hidden``, then a linear output of ``channels``.

    ``3x15`` with 3 channels is 2→15→15→15→3 (573 parameters).
    """

    layers: int = 3  # number of sine layers (the first one maps the 2-D coordinate)
    hidden: int = 15  # width of every sine layer
    channels: int = 3  # output channels: 1 (gray) or 3 (RGB)
    w0: float = DEFAULT_W0  # sin(w0 * (x W + b)) in every sine layer

    def __post_init__(self) -> None:
        if self.layers < 1 or self.hidden < 1:
            raise UserError(f"--arch: layers and hidden width must be >= 1, got {self.name}")
        if self.layers > 64 or self.hidden > 1024:
            raise UserError(f"--arch: {self.name} is absurdly large (at most 64x1024)")
        if self.channels not in (1, 3):
            raise UserError(f"images must have 1 or 3 channels, got {self.channels}")
        if not (0 < self.w0 < 1e4):
            raise UserError(f"--w0 must be positive, got {self.w0}")

    @property
    def name(self) -> str:
        return f"{self.layers}x{self.hidden}"

    @classmethod
    def parse(cls, text: str, channels: int = 3, w0: float = DEFAULT_W0) -> "Arch":
        """Parse ``LxH`` (e.g. ``3x15``); a clear error for anything else."""
        match = re.fullmatch(r"\s*(\d{1,3})\s*[xX]\s*(\d{1,5})\s*", str(text))
        if not match:
            raise UserError(f"--arch: expected LAYERSxHIDDEN such as 3x15, got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)), channels, w0)

    def layer_shapes(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of every linear map, first sine layer to linear output."""
        widths = [2] + [self.hidden] * self.layers + [self.channels]
        return list(zip(widths[:-1], widths[1:]))

    @property
    def n_params(self) -> int:
        return sum(i * o + o for i, o in self.layer_shapes())

    def to_json(self) -> dict:
        return {"layers": self.layers, "hidden": self.hidden, "w0": self.w0, "channels": self.channels}

    @classmethod
    def from_json(cls, d: dict) -> "Arch":
        return cls(int(d["layers"]), int(d["hidden"]), int(d["channels"]), float(d["w0"]))


PRECISIONS = ("fp32", "tf32")  # the values of FitConfig.precision


@dataclass(frozen=True)
class FitConfig:
    """How each image's SIREN is fitted (paper Sec. VI-A uses 5000 steps at 5e-4 for round 1)."""

    steps: int = 2000  # Adam steps per image
    lr: float = 1e-3  # peak learning rate, decayed by a cosine to lr * lr_final_ratio
    lr_final_ratio: float = 0.05  # where the cosine ends, relative to lr
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's (beta1, beta2), torch's defaults
    eps: float = 1e-8  # Adam's epsilon, torch's default
    target_psnr: float | None = None  # stop an image once it reaches this PSNR (dB); None: never
    check_every: int = 25  # steps between early-stop checks and batch compaction
    divergence_drop_db: float = 8.0  # PSNR this far under the image's best counts as a collapse
    refit_lr_factor: float = 0.5  # a diverged image is refitted from its start (or a fresh seed) at lr * this
    max_refits: int = 2  # how many times a diverged image is refitted
    keep_best: bool = True  # return each image's best-PSNR weights (False: the last weights)
    seed: int = 0  # seeds the SIREN init of every image (image i uses seed + global index i)
    memory_budget_mb: float = 1024.0  # working memory for one chunk of images
    chunk_size: int | None = None  # images fitted at once; None: derived from memory_budget_mb
    # Matmul precision of the fit: fp32, or tf32 (a CUDA GPU's TF32 tensor cores: matmul operands
    # rounded to 10 mantissa bits, float32 sums; the CPU computes float32 either way). bfloat16 is
    # not offered: benchmarks/precision.py measured 0.1-0.6 dB lost with bf16 matmuls and 0.9-2.8 dB
    # with bf16 throughout, against tf32's -0.04/+0.07 dB (noise), at 2000 steps on 32x32 images.
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise UserError(f"--steps must be >= 1, got {self.steps}")
        if not (0 < self.lr < 1):
            raise UserError(f"--lr must be in (0, 1), got {self.lr}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise UserError(f"--batch-size must be >= 1, got {self.chunk_size}")
        if self.target_psnr is not None and not (0 < self.target_psnr < 200):
            raise UserError(f"--target-psnr must be in (0, 200) dB, got {self.target_psnr}")
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.memory_budget_mb <= 0:
            raise UserError(f"memory budget must be positive, got {self.memory_budget_mb}")
