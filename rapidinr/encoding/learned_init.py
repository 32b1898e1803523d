"""A learned initialization: one starting point for every image's SIREN, meta-learned by Reptile.

Fitting every image from a random SIREN init spends most of its steps rediscovering what all
images of a dataset share. Tancik et al. (2021, "Learned Initializations for Optimizing
Coordinate-Based Neural Representations") meta-learn the starting weights instead; we use their
Reptile variant (Nichol et al. 2018) because it needs no second-order gradients: with the init
``theta`` (P,),

    repeat: take a batch of training images, run ``inner_steps`` of the fit's own Adam on each
            image from ``theta`` (batched: one (B, P) matrix, :func:`rapidinr.core.siren.loss_and_grad`),
            then move ``theta`` toward the mean of the adapted weights:
            theta += eps * mean_i(phi_i - theta), eps decaying linearly to 0.

The inner loop is the encoder's Adam at the encoder's learning rate, so the init is tuned for
exactly the fit that will start from it. The init is saved as a small safetensors file with a
JSON header naming the architecture, image size, channels, training data, steps and the command
that made it (:func:`save_init`, :func:`load_init`). An encoded ``.rinr`` never needs the init to
decode (it stores every image's full weights); its header records which init the fit started from.

A fit that starts this close tolerates a higher rate and needs a far shorter schedule than one
from the random init, so ``meta-init`` also chooses the rate and step count on held-out
training images (``init_tuning.py``) and stores them in the header; :func:`fit_settings` applies
them wherever the caller gave none.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rapidinr.codec import fileformat
from rapidinr.core import siren
from rapidinr.core.adam import BatchedAdam
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.encoding.fit import images_to_targets, psnr_from_mse
from rapidinr.sources.datasets import DATA_DIR

INIT_KIND = "rapidinr-init"


@dataclass(frozen=True)
class MetaConfig:
    """Reptile settings; the defaults take a few minutes on a 2-core CPU for 28×28 images."""

    outer_steps: int = 300  # Reptile updates of the init
    inner_steps: int = 16  # Adam steps on each image per outer step (the horizon the init is tuned for)
    meta_batch: int = 32  # images adapted at once per outer step
    inner_lr: float = 1e-3  # Adam's rate in the inner loop: the encoder's --lr
    outer_lr: float = 1.0  # Reptile's step toward the adapted weights, decayed linearly to 0
    betas: tuple[float, float] = (0.9, 0.999)  # inner Adam, as FitConfig
    eps: float = 1e-8
    seed: int = 0  # the starting SIREN init and the order of training images
    # Hidden weight matrices stay within this multiple of SIREN's init bound (0: no limit). An
    # unbounded init drifts to hidden weights 2-4x larger than a random fit's, and the per-tensor
    # 8-bit grid of a .rinr gets that much coarser: fits from it lost ~3 dB to 8-bit storage.
    max_hidden_weight: float = 4.0

    def __post_init__(self) -> None:
        for name in ("outer_steps", "inner_steps", "meta_batch"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not (0 < self.inner_lr < 1):
            raise UserError(f"--inner-lr must be in (0, 1), got {self.inner_lr}")
        if not (0 < self.outer_lr <= 1):
            raise UserError(f"--outer-lr must be in (0, 1], got {self.outer_lr}")
        if not (0 <= self.max_hidden_weight < 1e6):
            raise UserError(f"--max-hidden-weight must be >= 0, got {self.max_hidden_weight}")


@dataclass
class LearnedInit:
    """A learned init: weights (P,) for ``arch`` at ``height``×``width``, and where they came from."""

    params: torch.Tensor  # (P,) float32
    arch: Arch
    height: int
    width: int
    info: dict = field(default_factory=dict)  # training data, steps, command, final inner PSNR

    @property
    def sha256(self) -> str:
        """Identity of the weights (of their float32 bytes), recorded in every .rinr fitted from them."""
        return hashlib.sha256(self.params.float().contiguous().numpy().tobytes()).hexdigest()

    def identity(self, path: str | Path | None = None) -> dict:
        """What an encoded file's header records about the init it started from."""
        out = {"kind": "learned", "sha256": self.sha256, "arch": self.arch.name,
               "size": f"{self.height}x{self.width}", "trained_on": self.info.get("source", "")}
        if path is not None:
            out["file"] = Path(path).name
        return out

    @property
    def recommended_fit(self) -> dict | None:
        """{"lr", "steps"} chosen for fits from this init on held-out images (init_tuning.py), or None."""
        fit = self.info.get("fit")
        return {"lr": fit["lr"], "steps": fit["steps"]} if isinstance(fit, dict) else None

    def check_fits(self, arch: Arch, height: int, width: int, path="--init") -> None:
        """A clear error when this init was made for another architecture or image size."""
        if (arch.layers, arch.hidden, arch.channels) != (self.arch.layers, self.arch.hidden, self.arch.channels):
            raise UserError(f"{path}: learned init is for arch {self.arch.name} with {self.arch.channels} "
                            f"channel(s), not {arch.name} with {arch.channels}")
        if abs(arch.w0 - self.arch.w0) > 1e-9:
            raise UserError(f"{path}: learned init was made with w0={self.arch.w0}, not {arch.w0}")
        if (height, width) != (self.height, self.width):
            raise UserError(f"{path}: learned init is for {self.height}x{self.width} images, "
                            f"not {height}x{width} (pass --size {self.height}x{self.width})")


def _adam_inner(theta: torch.Tensor, targets: torch.Tensor, coords: torch.Tensor, arch: Arch,
                cfg: MetaConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``cfg.inner_steps`` Adam steps (the fit's formula, fresh moments) on every image from ``theta``.

    targets (B, HW, C). Returns the adapted weights (B, P) and the PSNR before the last step (B,).
    """
    b = targets.shape[0]
    adam = BatchedAdam(theta.expand(b, -1).clone(), cfg.betas, cfg.eps)  # (B, P)
    mse = None
    for _ in range(cfg.inner_steps):
        mse, grad = siren.loss_and_grad(adam.params, arch, coords, targets)
        adam.step(torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0), cfg.inner_lr)
    return adam.params, psnr_from_mse(mse)


def bound_hidden_weights(theta: torch.Tensor, arch: Arch, multiple: float) -> None:
    """Clamp theta's (P,) hidden weight matrices, in place, to ``multiple`` × SIREN's init bound
    (first and last layers and all biases stay free; ``multiple`` 0: no bound)."""
    if multiple <= 0:
        return
    layers = siren.layer_views(theta[None], arch)
    for weight, _ in layers[1:-1]:  # (1, in, out) views into theta
        bound = multiple * siren.init_bound(weight.shape[1], arch.w0)
        weight.clamp_(-bound, bound)


def meta_learn(images: torch.Tensor, arch: Arch, cfg: MetaConfig = MetaConfig(), device="cpu",
               progress: bool = True, start: torch.Tensor | None = None) -> tuple[torch.Tensor, list[float]]:
    """Reptile over the training images (uint8 N×C×H×W). Returns (init (P,) float32 on the CPU,
    mean inner-loop PSNR per outer step, a learning curve).

    start: the init to begin from (P,); default the SIREN init of seed ``cfg.seed``.
    """
    if images.dim() != 4 or images.dtype != torch.uint8 or images.shape[0] == 0:
        raise UserError("meta-init: training images must be a non-empty uint8 tensor N×C×H×W")
    if images.shape[1] != arch.channels:
        raise UserError(f"meta-init: images have {images.shape[1]} channels, arch expects {arch.channels}")
    n, _, h, w = images.shape
    device = torch.device(device)
    coords = siren.coordinate_grid(h, w, device=device)  # (HW, 2)
    theta = (start if start is not None else siren.init_params(arch, [cfg.seed])[0]).float().to(device)
    generator = torch.Generator().manual_seed(cfg.seed)
    order, cursor = torch.randperm(n, generator=generator), 0
    curve = []
    bar = tqdm(range(cfg.outer_steps), desc="meta-init", unit="step", disable=not progress)
    for outer in bar:
        if cursor + cfg.meta_batch > n:  # a fresh pass over the images, in a new order
            order, cursor = torch.randperm(n, generator=generator), 0
        rows = order[cursor : cursor + cfg.meta_batch]
        cursor += cfg.meta_batch
        targets = images_to_targets(images[rows]).to(device)  # (B, HW, C)
        adapted, psnr = _adam_inner(theta, targets, coords, arch, cfg)
        ok = torch.isfinite(adapted).all(dim=1)  # a diverged image never drags the init
        if ok.any():
            eps = cfg.outer_lr * (1 - outer / cfg.outer_steps)
            theta += eps * (adapted[ok].mean(dim=0) - theta)
            bound_hidden_weights(theta, arch, cfg.max_hidden_weight)
        curve.append(float(psnr[torch.isfinite(psnr)].mean()) if torch.isfinite(psnr).any() else float("nan"))
        bar.set_postfix(psnr=f"{curve[-1]:.2f}")
    bar.close()
    return theta.cpu(), curve


def fit_settings(init: LearnedInit | None, steps: int | None = None, lr: float | None = None) -> dict:
    """{"steps", "lr"} for a fit from ``init``: the values given; where None, the init's
    recommendation (chosen on held-out images, init_tuning.py), else the encoder's defaults."""
    recommended = (init.recommended_fit if init is not None else None) or {}
    return {"steps": steps if steps is not None else recommended.get("steps", FitConfig.steps),
            "lr": lr if lr is not None else recommended.get("lr", FitConfig.lr)}


def save_init(path: str | Path, init: LearnedInit) -> int:
    """Write the init as safetensors (tensor ``init`` (P,)) with a JSON header; returns its size."""
    header = {"kind": INIT_KIND, "arch": init.arch.to_json(), "arch_name": init.arch.name,
              "height": init.height, "width": init.width, "channels": init.arch.channels,
              "params_per_image": init.arch.n_params, "sha256": init.sha256, "info": init.info}
    return fileformat.write(path, header, {"init": init.params.float().contiguous()})


def load_init(path: str | Path) -> LearnedInit:
    """Read and verify a learned-init file written by :func:`save_init`."""
    header, tensors, _ = fileformat.read(path)
    if header.get("kind") != INIT_KIND:
        raise UserError(f"{path}: not a rapidinr learned-init file")
    try:
        arch = Arch.from_json(header["arch"])
        height, width = int(header["height"]), int(header["width"])
    except (KeyError, TypeError, ValueError, UserError):
        raise UserError(f"{path}: learned-init header is missing arch or size") from None
    params = tensors.get("init")
    if params is None or params.dtype != torch.float32 or tuple(params.shape) != (arch.n_params,):
        raise UserError(f"{path}: init weights missing or not float32 ({arch.n_params},)")
    if not torch.isfinite(params).all():
        raise UserError(f"{path}: init weights contain NaN or infinity")
    info = header.get("info") if isinstance(header.get("info"), dict) else {}
    fit = info.get("fit")
    if fit is not None and not _valid_fit(fit):
        raise UserError(f"{path}: learned-init header has a bad fit recommendation (lr in (0, 1), steps >= 1)")
    return LearnedInit(params, arch, height, width, info)


def _valid_fit(fit) -> bool:
    if not isinstance(fit, dict):
        return False
    lr, steps = fit.get("lr"), fit.get("steps")
    return (isinstance(lr, (int, float)) and not isinstance(lr, bool) and 0 < lr < 1
            and isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1)


def config_json(cfg: MetaConfig) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}


def shipped_inits() -> list[Path]:
    """Learned inits that ship in ``data/`` (``init-<data>-<arch>-<H>x<W>.safetensors``)."""
    return sorted(DATA_DIR.glob("init-*.safetensors"))


# The training data ``--init learned`` prefers when several shipped inits fit the arch, size and
# channels (only the 32x32 RGB ones overlap). Measured on 32x32 crops of Kodak photos that neither
# init saw (kodim17..24), fits from the CIFAR-10 init reach the random init's PSNR sooner and end
# higher, as fitted and as stored, than fits from the Kodak init (made from crops of kodim01..16:
# fewer distinct images), so the CIFAR-10 one stays the default for photo crops too
# (benchmarks/learned_init.py --source kodak, benchmarks/compact_store.py; data/INIT.md).
# ``--init learned:kodak`` picks the Kodak one.
PREFERRED_DATA = ("cifar10", "kodak", "default")


def init_data(path: Path) -> str:
    """The training data a shipped init's file name names: ``init-<data>-<arch>-<H>x<W>``."""
    return path.name.split("-")[1]


def _shipped_in_preference_order(data: str | None) -> list[Path]:
    rank = lambda p: PREFERRED_DATA.index(init_data(p)) if init_data(p) in PREFERRED_DATA else len(PREFERRED_DATA)
    paths = sorted(shipped_inits(), key=lambda p: (rank(p), p.name))
    if data is None:
        return paths
    chosen = [p for p in paths if init_data(p) == data]
    if not chosen:
        known = sorted({init_data(p) for p in paths})
        raise UserError(f"--init learned:{data}: no learned init from {data!r} ships; learned:DATA takes one of "
                        f"{', '.join(known)}")
    return chosen


def resolve_init(spec, arch: Arch, height: int, width: int) -> LearnedInit | None:
    """``encode --init``: ``random`` (or None) → None; ``learned`` → the shipped init for this
    architecture, size and channel count (the first in :data:`PREFERRED_DATA` order where several
    fit: for 32x32 RGB, the CIFAR-10 one); ``learned:DATA`` → the one meta-learned on DATA
    (cifar10, kodak, default); anything else → a learned-init file's path."""
    if spec is None or spec == "random":
        return None
    if isinstance(spec, LearnedInit):
        spec.check_fits(arch, height, width)
        return spec
    if spec == "learned" or str(spec).startswith("learned:"):
        data = str(spec).partition(":")[2] or None
        for path in _shipped_in_preference_order(data):
            try:
                init = load_init(path)
                init.check_fits(arch, height, width, path)
            except UserError:
                continue
            init.info.setdefault("file", path.name)
            return init
        raise UserError(f"--init {spec}: no learned init ships for arch {arch.name} at {height}x{width} with "
                        f"{arch.channels} channel(s); make one with `rapidinr meta-init SOURCE -o INIT.safetensors "
                        f"--arch {arch.name} --size {height}x{width}` and pass --init INIT.safetensors")
    path = Path(str(spec))
    if not path.is_file():
        raise UserError(f"--init: expected learned, learned:DATA, random or a learned-init file, got {spec!r} "
                        "(no such file)")
    init = load_init(path)
    init.check_fits(arch, height, width, path)
    init.info.setdefault("file", path.name)
    return init
