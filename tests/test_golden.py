"""Golden files: small dense and packed sets of every .rinr version decode exactly as they did.

tests/golden/make_golden.py made them (version 1 by the last version-1 writer, commit 5a7ae3e).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from rapidinr import load
from rapidinr.codec.fileformat import FORMAT_VERSION, FormatWarning

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = [(kind, version) for version in (1, 2) for kind in ("dense", "packed")]


@pytest.mark.parametrize("kind,version", CASES)
def test_golden_file_decodes_as_recorded(kind, version):
    path = GOLDEN / f"{kind}-v{version}.rinr"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inrs = load(path)
    unprotected = [w for w in caught if issubclass(w.category, FormatWarning)]
    assert len(unprotected) == (version == 1)  # version 1: its header is not under the checksum
    if version == 1:
        assert "header is not covered by the checksum" in str(unprotected[0].message)
    expected = torch.from_numpy(np.load(GOLDEN / f"{kind}-v{version}.expected.npy", allow_pickle=False))
    decoded = inrs.decode()
    assert decoded.shape == expected.shape
    assert torch.allclose(decoded, expected, atol=1e-6, rtol=0), float((decoded - expected).abs().max())
    assert inrs.info()["format_version"] == version
    if kind == "dense":
        assert inrs.labels.tolist() == [0, 2, 1] and inrs.class_names == ["cat", "dog", "eel"]
        assert inrs.psnr.tolist() == [21.5, 22.25, 23.0] and inrs.info()["param_encoding"] == "dense-f32"
    else:
        assert inrs.labels is None and inrs.arch.w0 == 25.0 and inrs.info()["quant_bits"] == 8


def test_the_newest_golden_files_are_the_current_version():
    assert FORMAT_VERSION == 2
    assert (GOLDEN / f"dense-v{FORMAT_VERSION}.rinr").is_file()


def test_both_versions_hold_the_same_sets():
    for kind in ("dense", "packed"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FormatWarning)
            old, new = load(GOLDEN / f"{kind}-v1.rinr"), load(GOLDEN / f"{kind}-v2.rinr")
        assert torch.equal(old.dense_params(), new.dense_params())


@pytest.mark.parametrize("name", ["compact-v2", "compact-steps-v2"])
def test_golden_compact_file_decodes_as_recorded(name):
    """compact-v2: written before per-image steps existed (one step per tensor); compact-steps-v2:
    with them. Both must keep decoding to the same codes and pixels."""
    inrs = load(GOLDEN / f"{name}.rinr")
    expected = torch.from_numpy(np.load(GOLDEN / f"{name}.expected.npy", allow_pickle=False))
    assert torch.equal(inrs.decode(), expected)
    assert inrs.info()["param_encoding"] == "compact-v1" and inrs.store.bits == [10, 12, 6, 9, 4, 8]
    assert (inrs.store.image_exps is None) == (name == "compact-v2")
    if inrs.store.image_exps is not None:
        assert inrs.store.image_exps.tolist() == [0, -3, -8, 2]
