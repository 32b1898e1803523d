"""How a set's weights are held on a device and in the file.

A store keeps the (N, P) weight matrix in some compact form and hands out float32 rows for a
batch of images (``gather``). :class:`DenseStore` is plain float32; compressed stores (pruned,
quantized) implement the same four methods, so :class:`~rapidinr.inrset.INRSet` and the loaders
never care how weights are kept.
"""
from __future__ import annotations

import torch

from .errors import UserError


class DenseStore:
    """Weights as one float32 (N, P) matrix."""

    encoding = "dense-f32"

    def __init__(self, params: torch.Tensor):
        self.params = params.float()  # (N, P)

    def __len__(self) -> int:
        return self.params.shape[0]

    @property
    def device(self) -> torch.device:
        return self.params.device

    @property
    def nbytes(self) -> int:
        """Bytes this store occupies on its device."""
        return self.params.numel() * self.params.element_size()

    def to(self, device) -> "DenseStore":
        return DenseStore(self.params.to(device))  # one transfer

    def gather(self, indices: torch.Tensor) -> torch.Tensor:
        """float32 weights of the images at ``indices`` (B,) → (B, P)."""
        return self.params.index_select(0, indices)

    def dense(self) -> torch.Tensor:
        return self.params

    def sparsity(self) -> float:
        return float((self.params == 0).float().mean()) if self.params.numel() else 0.0

    def header(self) -> dict:
        return {"param_encoding": self.encoding, "quant_bits": 32, "quant_layers": "none",
                "sparsity": round(self.sparsity(), 6)}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"params": self.params}

    @classmethod
    def from_tensors(cls, path, tensors: dict, header: dict, n: int, p: int) -> "DenseStore":
        params = tensors.get("params")
        if params is None or params.dtype != torch.float32 or tuple(params.shape) != (n, p):
            raise UserError(f"{path}: weights missing or not float32 ({n}, {p})")
        if not torch.isfinite(params).all():
            raise UserError(f"{path}: weights contain NaN or infinity")
        return cls(params)


STORES = {DenseStore.encoding: DenseStore}


def store_from_tensors(path, tensors: dict, header: dict, n: int, p: int):
    """Rebuild the store a file was written with, from its ``param_encoding``."""
    kind = STORES.get(header.get("param_encoding"))
    if kind is None:
        raise UserError(f"{path}: unknown weight encoding {header.get('param_encoding')!r}")
    return kind.from_tensors(path, tensors, header, n, p)
