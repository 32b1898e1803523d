"""The compact store: every layer quantized on its own grid, codes entropy-coded, optionally
relative to a learned init.

Weights are cut into groups, each layer's weight matrix and its bias (``groups``). Group g has
``bits[g]`` (2..16) and one step size ``steps[g]`` shared by the whole set; an image's weight is

    w = init + steps[g] * code,   code an integer in [-(2^(bits[g]-1) - 1), 2^(bits[g]-1) - 1]

(``init`` a learned init (P,), or zero). A step shared by the set costs no per-image scales and,
with an entropy coder, is what a rate-distortion-optimal uniform quantizer uses anyway, as long
as the codes' range is free. It is not where a group's codes must fit int8 (the hidden weight
matrices, to stay one byte each on the device): there the step is at least the set's largest
|w - init| over 127, so one image with a large weight coarsens every image's grid. So an image
may also have its own step multiplier ``2 ** (e_i / STEPS_PER_OCTAVE)`` (``image_exps``, int8
e_i <= 0 as the encoder picks them, one byte per image in the file): image i's weight is
``init + steps[g] * 2 ** (e_i / 4) * code``, and its codes' entropy model is the group's scaled
by ``2 ** (-e_i / 4)`` (``entropy.py``: factors), which costs nothing more. No ``image_exps``
(every file written before them) is the one set-wide step.

On the device: the integer codes of the groups of up to 8 bits as int8 (N, P8), of the wider
groups as int16 (N, P16), the step of every position (P,), every image's step multiplier (N, 1)
where it has one, and the init (P,); ``gather`` is two index_selects (three with image steps), two
column scatters, one multiply (two) and one add. In the file: the codes of the whole set in one
ANS stream (``entropy.py``, one parametric model per group), the bits, steps and models in the
header (key ``compact``), the images' step exponents (tensor ``image_exps``, with header key
``compact.image_steps_per_octave``), and the init either stored once (tensor ``init``) or pinned
by its sha256 to a learned init that ships in ``data/`` (:func:`shipped_init`).
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from rapidinr.codec import entropy, fileformat
from rapidinr.core.config import Arch
from rapidinr.core.errors import UserError
from rapidinr.sources.datasets import DATA_DIR

MIN_BITS, MAX_BITS = 2, 16
STEPS_PER_OCTAVE = 4  # an image's step multiplier is 2 ** (e / STEPS_PER_OCTAVE), e an int8
MAX_EXP = 32  # |e| at most: steps from 1/256 to 256 times the group's


def groups(arch: Arch) -> list[tuple[int, int]]:
    """(start, size) in the flat (P,) vector of every layer's weight matrix, then its bias."""
    out, offset = [], 0
    for fan_in, fan_out in arch.layer_shapes():
        out += [(offset, fan_in * fan_out), (offset + fan_in * fan_out, fan_out)]
        offset += fan_in * fan_out + fan_out
    return out


def group_index(arch: Arch) -> torch.Tensor:
    """(P,) long: the group of every parameter."""
    return torch.cat([torch.full((size,), g, dtype=torch.long) for g, (_, size) in enumerate(groups(arch))])


def qmax(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def check_bits(bits, name: str = "--compact-bits") -> None:
    for b in bits:
        if isinstance(b, bool) or not isinstance(b, int) or not MIN_BITS <= b <= MAX_BITS:
            raise UserError(f"{name}: bits must be integers in {MIN_BITS}..{MAX_BITS}, got {b!r}")


def init_sha256(init: torch.Tensor) -> str:
    """The identity of an init's weights: sha256 of its float32 bytes (as LearnedInit.sha256)."""
    return hashlib.sha256(init.float().contiguous().cpu().numpy().tobytes()).hexdigest()


def shipped_init(sha256: str) -> torch.Tensor | None:
    """The weights (P,) of the learned init in ``data/`` whose sha256 is ``sha256``, or None."""
    for path in sorted(DATA_DIR.glob("init-*.safetensors")):
        try:
            header, tensors, _ = fileformat.read(path)
        except UserError:
            continue
        params = tensors.get("init")
        if header.get("sha256") == sha256 and params is not None and init_sha256(params) == sha256:
            return params.float()
    return None


def image_multipliers(image_exps: torch.Tensor | None, n: int, device=None) -> torch.Tensor:
    """(n, 1) float32: every image's step multiplier 2 ** (e_i / STEPS_PER_OCTAVE) (1 without exps)."""
    if image_exps is None:
        return torch.ones(n, 1, device=device)
    return torch.exp2(image_exps.to(device=device, dtype=torch.float32) / STEPS_PER_OCTAVE)[:, None]


def check_image_exps(image_exps: torch.Tensor | None, n: int, name: str = "image step exponents") -> None:
    if image_exps is not None and (image_exps.dtype != torch.int8 or tuple(image_exps.shape) != (n,)
                                   or bool((image_exps.abs() > MAX_EXP).any())):
        raise UserError(f"{name}: expected int8 ({n},) within +-{MAX_EXP}")


def default_steps(delta: torch.Tensor, arch: Arch, bits: list[int], image_exps: torch.Tensor | None = None
                  ) -> list[float]:
    """Each group's step: its largest |delta| (over each image's multiplier, ``image_exps``) over the
    set on the grid of ``bits[g]`` (no clipping), rounded to 6 significant digits so the header
    holds it exactly. delta (N, P)."""
    out = []
    delta = delta / image_multipliers(image_exps, delta.shape[0], delta.device)  # (N, P)
    for (start, size), b in zip(groups(arch), bits):
        peak = float(delta[:, start : start + size].abs().max()) if delta.numel() else 0.0
        out.append(float(f"{peak / qmax(b):.6g}") if peak > 0 else 1.0)
    return out


def quantize_codes(params: torch.Tensor, arch: Arch, bits: list[int], steps: list[float],
                   init: torch.Tensor | None, image_exps: torch.Tensor | None = None) -> torch.Tensor:
    """(N, P) float → (N, P) integer codes (int8 up to 8 bits, else int16), clipped to each group's
    range; ``image_exps`` (N,) int8: every image's step multiplier (module doc), None: all 1."""
    index = group_index(arch).to(params.device)
    step = torch.tensor(steps, dtype=torch.float32, device=params.device)[index]  # (P,)
    if image_exps is not None:
        step = step * image_multipliers(image_exps, params.shape[0], params.device)  # (N, P)
    limit = torch.tensor([qmax(b) for b in bits], dtype=torch.float32, device=params.device)[index]  # (P,)
    delta = params.float() - (init.to(params.device) if init is not None else 0)
    codes = torch.maximum(torch.minimum(torch.round(delta / step), limit), -limit)
    return codes.to(torch.int8 if max(bits) <= 8 else torch.int16)


def fake_quantize(params: torch.Tensor, arch: Arch, bits: list[int], steps: list[float],
                  init: torch.Tensor | None, image_exps: torch.Tensor | None = None) -> torch.Tensor:
    """The float weights (N, P) a compact store of ``params`` decodes to (as ``gather`` computes them)."""
    index = group_index(arch).to(params.device)
    step = torch.tensor(steps, dtype=torch.float32, device=params.device)[index]  # (P,)
    out = quantize_codes(params, arch, bits, steps, init, image_exps).float() * step
    if image_exps is not None:
        out = out * image_multipliers(image_exps, params.shape[0], params.device)
    return out + init.to(params.device) if init is not None else out


class CompactStore:
    """Integer codes per group on one set-wide step, entropy-coded in the file (module doc)."""

    encoding = "compact-v1"

    def __init__(self, codes: torch.Tensor, arch: Arch, bits: list[int], steps: list[float],
                 init: torch.Tensor | None = None, store_init: bool = True, image_exps: torch.Tensor | None = None):
        check_bits(bits)
        check_image_exps(image_exps, codes.shape[0])
        self.arch, self.bits, self.steps = arch, list(bits), [float(s) for s in steps]
        index = group_index(arch).to(codes.device)
        wide = torch.tensor([b > 8 for b in self.bits], device=codes.device)[index]  # (P,) bool
        self.narrow_pos, self.wide_pos = (~wide).nonzero().flatten(), wide.nonzero().flatten()  # (P8,), (P16,)
        self.narrow = codes[:, self.narrow_pos].to(torch.int8)  # (N, P8)
        self.wide = codes[:, self.wide_pos].to(torch.int16)  # (N, P16)
        self.step = torch.tensor(self.steps, dtype=torch.float32, device=codes.device)[index]  # (P,)
        self.init = (init.float().to(codes.device) if init is not None
                     else torch.zeros(arch.n_params, device=codes.device))  # (P,)
        self.relative = init is not None
        self.store_init = store_init
        self.image_exps = None if image_exps is None else image_exps.to(codes.device)  # (N,) int8 or None
        self.image_step = (None if image_exps is None  # (N, 1): every image's step multiplier, or None (all 1)
                           else image_multipliers(self.image_exps, codes.shape[0], codes.device))
        self._packed = None

    @classmethod
    def from_params(cls, params: torch.Tensor, arch: Arch, bits, steps: list[float] | None = None,
                    init: torch.Tensor | None = None, store_init: bool = True,
                    image_exps: torch.Tensor | None = None) -> CompactStore:
        """Quantize float weights (N, P); ``bits`` one int for every group or one per group; ``steps``
        default: :func:`default_steps`. ``init`` (P,): code ``params - init`` (init-relative).
        ``image_exps`` (N,) int8: every image's step multiplier (module doc)."""
        n_groups = len(groups(arch))
        bits = [bits] * n_groups if isinstance(bits, int) else list(bits)
        check_bits(bits)
        if len(bits) != n_groups:
            raise UserError(f"--compact-bits: expected 1 or {n_groups} values for arch {arch.name}, got {len(bits)}")
        check_image_exps(image_exps, params.shape[0])
        delta = params.float() - (init.to(params.device) if init is not None else 0)
        steps = default_steps(delta, arch, bits, image_exps) if steps is None else [float(s) for s in steps]
        return cls(quantize_codes(params, arch, bits, steps, init, image_exps), arch, bits, steps, init, store_init,
                   image_exps)

    def __len__(self) -> int:
        return self.narrow.shape[0]

    @property
    def device(self) -> torch.device:
        return self.narrow.device

    @property
    def codes(self) -> torch.Tensor:
        """All integer codes (N, P) as int16."""
        out = torch.empty(len(self), self.arch.n_params, dtype=torch.int16, device=self.device)
        out[:, self.narrow_pos], out[:, self.wide_pos] = self.narrow.to(torch.int16), self.wide
        return out

    @property
    def nbytes(self) -> int:
        """Bytes on the device: the codes at their widths, their positions, the step and init vectors,
        the images' step multipliers."""
        tensors = (self.narrow, self.wide, self.narrow_pos, self.wide_pos, self.step, self.init, self.image_step)
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)

    def to(self, device) -> CompactStore:
        return CompactStore(self.codes.to(device), self.arch, self.bits, self.steps,
                            self.init.to(device) if self.relative else None, self.store_init, self.image_exps)

    def gather(self, indices: torch.Tensor) -> torch.Tensor:
        """float32 weights of the images at ``indices`` (B,) → (B, P)."""
        out = torch.empty(indices.numel(), self.arch.n_params, device=self.device)  # (B, P)
        out[:, self.narrow_pos] = self.narrow.index_select(0, indices).float()
        out[:, self.wide_pos] = self.wide.index_select(0, indices).float()
        out.mul_(self.step)
        if self.image_step is not None:
            out.mul_(self.image_step.index_select(0, indices))
        return out.add_(self.init)

    def all_finite(self) -> bool:
        """Whether every weight decodes finite: the largest code (int16) on each step around the init
        bounds them all (no dense copy of the set)."""
        top = float(self.image_step.max()) if self.image_step is not None and len(self) else 1.0
        return bool(torch.isfinite(self.step.abs() * (2**15 - 1) * top + self.init.abs()).all())

    def dense(self) -> torch.Tensor:
        return self.gather(torch.arange(len(self), device=self.device))

    def sparsity(self) -> float:
        return float((self.dense() == 0).float().mean()) if self.codes.numel() else 0.0

    def _group_codes(self) -> list[np.ndarray]:
        codes = self.codes.cpu().to(torch.int32)
        return [codes[:, s : s + size].contiguous().numpy().ravel() for s, size in groups(self.arch)]

    def _pack(self) -> tuple[dict, dict]:
        if self._packed is None:
            parts = self._group_codes()
            factors = model_factors(self.image_exps, self.arch)
            models = [entropy.fit_model(c, qmax(b), f) for c, b, f in zip(parts, self.bits, factors)]
            words = entropy.encode(parts, models, factors)
            tensors = {"stream": torch.from_numpy(words.view(np.int32).copy())}  # uint32 words, stored as I32
            if self.image_exps is not None:
                tensors["image_exps"] = self.image_exps.cpu()
            init = None
            if self.relative:
                init = {"sha256": init_sha256(self.init), "stored": bool(self.store_init)}
                if self.store_init:
                    tensors["init"] = self.init.cpu()
            head = {"bits": self.bits, "steps": self.steps, "models": [m.to_json() for m in models],
                    "digest": entropy.digest(parts), "init": init}
            if self.image_exps is not None:
                head["image_steps_per_octave"] = STEPS_PER_OCTAVE
            self._packed = (head, tensors)
        return self._packed

    def header(self) -> dict:
        return {"param_encoding": self.encoding, "quant_bits": max(self.bits), "quant_layers": "all",
                "sparsity": round(self.sparsity(), 6), "compact": self._pack()[0]}

    def tensors(self) -> dict[str, torch.Tensor]:
        return dict(self._pack()[1])

    def file_form(self, chunks=None) -> fileformat.FileForm:
        """The file form, packed whole: the codes share one entropy-coded stream and the bit
        allocation saw the whole set, so there are no chunks to write it from."""
        if chunks is not None:
            raise ValueError("the compact store is packed whole, not from chunks")
        tensors = self.tensors()  # before the header: one packing serves both
        return fileformat.FileForm.whole(self.header(), tensors)

    @classmethod
    def from_tensors(cls, path, tensors: dict, header: dict, n: int, p: int) -> CompactStore:
        try:
            arch = Arch.from_json(header["arch"])
        except (KeyError, TypeError, ValueError, OverflowError, UserError):
            raise UserError(f"{path}: header field 'arch' is missing or invalid") from None
        head = header.get("compact")
        layout = groups(arch)
        if not isinstance(head, dict) or not all(isinstance(head.get(k), list) and len(head[k]) == len(layout)
                                                 for k in ("bits", "steps", "models")):
            raise UserError(f"{path}: header field 'compact' is missing or malformed")
        bits = head["bits"]
        try:
            check_bits(bits)
        except UserError:
            raise UserError(f"{path}: compact bits must be integers in {MIN_BITS}..{MAX_BITS}") from None
        steps = head["steps"]
        if not all(isinstance(s, (int, float)) and not isinstance(s, bool) and 0 < s < 1e6 for s in steps):
            raise UserError(f"{path}: compact step sizes must be positive numbers")
        models = [entropy.GroupModel.from_json(path, m) for m in head["models"]]
        if any(m.qmax != qmax(b) for m, b in zip(models, bits)):
            raise UserError(f"{path}: compact entropy models do not match the bits")
        stream = tensors.get("stream")
        if stream is None or stream.dtype != torch.int32 or stream.dim() != 1:
            raise UserError(f"{path}: entropy-coded weights missing or malformed (stream)")
        if not isinstance(head.get("digest"), str):
            raise UserError(f"{path}: header field 'compact.digest' is missing")
        init = _init_of(path, head.get("init"), tensors, p)
        image_exps = _image_exps_of(path, head, tensors, n)
        parts = entropy.decode(path, stream.numpy().view(np.uint32), models, [n * size for _, size in layout],
                               head["digest"], model_factors(image_exps, arch))
        codes = torch.empty(n, p, dtype=torch.int8 if max(bits) <= 8 else torch.int16)
        for (start, size), part in zip(layout, parts):
            codes[:, start : start + size] = torch.from_numpy(part).view(n, size).to(codes.dtype)
        return cls(codes, arch, bits, steps, init, store_init=init is not None and head["init"]["stored"],
                   image_exps=image_exps)


def model_factors(image_exps: torch.Tensor | None, arch: Arch) -> list[np.ndarray | None]:
    """Per group, the entropy model's factor for every code (image-major, as ``_group_codes``):
    image i's codes are 2 ** (e_i / STEPS_PER_OCTAVE) times narrower. None per group without exps."""
    if image_exps is None:
        return [None] * len(groups(arch))
    per_image = np.exp2(-image_exps.cpu().numpy().astype(np.float64) / STEPS_PER_OCTAVE)  # (N,)
    return [np.repeat(per_image, size) for _, size in groups(arch)]


def _image_exps_of(path, head: dict, tensors: dict, n: int) -> torch.Tensor | None:
    """The images' step exponents of a file (None: one set-wide step, as every file before them)."""
    if "image_steps_per_octave" not in head:
        if "image_exps" in tensors:
            raise UserError(f"{path}: tensor 'image_exps' without header field 'compact.image_steps_per_octave'")
        return None
    if head["image_steps_per_octave"] != STEPS_PER_OCTAVE or isinstance(head["image_steps_per_octave"], bool):
        raise UserError(f"{path}: header field 'compact.image_steps_per_octave' must be {STEPS_PER_OCTAVE}")
    exps = tensors.get("image_exps")
    if exps is None or exps.dtype != torch.int8 or tuple(exps.shape) != (n,) or bool((exps.abs() > MAX_EXP).any()):
        raise UserError(f"{path}: image step exponents missing or malformed (int8 ({n},) within +-{MAX_EXP})")
    return exps


def _init_of(path, spec, tensors: dict, p: int) -> torch.Tensor | None:
    """The init a file's weights are relative to: stored in it, or the shipped init its hash pins."""
    if spec is None:
        return None
    if (not isinstance(spec, dict) or not isinstance(spec.get("sha256"), str)
            or not isinstance(spec.get("stored"), bool)):
        raise UserError(f"{path}: header field 'compact.init' is malformed")
    if spec["stored"]:
        init = tensors.get("init")
        if init is None or init.dtype != torch.float32 or tuple(init.shape) != (p,) or not torch.isfinite(init).all():
            raise UserError(f"{path}: stored init missing or not finite float32 ({p},)")
        if init_sha256(init) != spec["sha256"]:
            raise UserError(f"{path}: stored init does not match its sha256 (corrupt)")
        return init
    init = shipped_init(spec["sha256"])
    if init is None or tuple(init.shape) != (p,):
        raise UserError(f"{path}: weights are stored relative to init {spec['sha256'][:12]}..., which the file "
                        f"does not carry and no learned init in {DATA_DIR} matches")
    return init
