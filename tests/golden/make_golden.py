"""Write the golden .rinr files and their expected decodes (run once per format version).

    PYTHONPATH=. python tests/golden/make_golden.py v2

``v1`` files were made by this script run against commit 5a7ae3e (the last version-1 writer:
``git archive 5a7ae3e rapidinr | tar -x -C OLD && PYTHONPATH=OLD python tests/golden/make_golden.py v1``).
``compact-v2`` (one step per tensor, the compact store before per-image steps) was made the same
way against commit 8af8ea9 (``... make_golden.py v2 compact``), ``compact-steps-v2`` (per-image
steps) by the commit that added them (``make_golden.py v2 compact-steps``).
Every later rapidinr must decode them identically (tests/test_golden.py). The expected pixels are
float32 ``.npy`` files (numpy's own format: no pickle), decoded at the stored size.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from rapidinr import INRSet
from rapidinr.codec.compact import CompactStore
from rapidinr.codec.prune import l1_mask
from rapidinr.codec.store import PackedStore
from rapidinr.core.config import Arch
from rapidinr.core.siren import init_params

HERE = Path(__file__).resolve().parent


def golden_sets() -> dict[str, INRSet]:
    """A dense RGB set (2x8, 3 images 6x5, labelled) and a packed gray one (pruned 30%, 8-bit, rice/zstd)."""
    g = torch.Generator().manual_seed(15)
    rgb = Arch(2, 8, 3)
    dense = INRSet(init_params(rgb, range(3)) + 0.05 * torch.randn(3, rgb.n_params, generator=g), rgb, 6, 5,
                   torch.tensor([0, 2, 1]), ["cat", "dog", "eel"], torch.tensor([21.5, 22.25, 23.0]),
                   {"source": "golden"})
    gray = Arch(3, 6, 1, 25.0)
    params = init_params(gray, range(10, 14)) + 0.05 * torch.randn(4, gray.n_params, generator=g)
    params = params * l1_mask(params, gray, 0.3)
    store = PackedStore.from_params(params, gray, bits=8, layers="hidden", lossless="zstd")
    packed = INRSet(store, gray, 7, 4, None, None, torch.tensor([30.0, 31.0, 32.0, 33.0]), {"source": "golden"})
    sets = {"dense": dense, "packed": packed}
    compact_params = init_params(rgb, range(20, 24)) + 0.05 * torch.randn(4, rgb.n_params, generator=g)  # (4, P)
    init = init_params(rgb, [30])[0]  # (P,): stored in the file
    bits = [10, 12, 6, 9, 4, 8]
    sets["compact"] = INRSet(CompactStore.from_params(compact_params, rgb, bits, init=init), rgb, 6, 5,
                             meta={"source": "golden"})
    if "image_exps" in CompactStore.from_params.__code__.co_varnames:  # a writer with per-image steps
        exps = torch.tensor([0, -3, -8, 2], dtype=torch.int8)
        sets["compact-steps"] = INRSet(CompactStore.from_params(compact_params, rgb, bits, init=init,
                                                                image_exps=exps), rgb, 6, 5, meta={"source": "golden"})
    return sets


def main(tag: str, names: list[str]) -> None:
    """Write the sets ``names`` (all by default) as ``NAME-TAG.rinr`` beside their expected decodes."""
    for name, inrs in golden_sets().items():
        if names and name not in names:
            continue
        inrs.save(HERE / f"{name}-{tag}.rinr")
        np.save(HERE / f"{name}-{tag}.expected.npy", inrs.decode().numpy().astype(np.float32))
        print(name, tag, (HERE / f"{name}-{tag}.rinr").stat().st_size, "bytes")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
