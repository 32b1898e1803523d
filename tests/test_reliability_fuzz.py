"""Untrusted .rinr files: hypothesis mutates a small valid file a few thousand ways.

Every mutated file must either load as a consistent set or raise the one clear error
(:class:`UserError`); never another exception, a hang (hypothesis' deadline) or an allocation
past what the file itself holds.
"""
from __future__ import annotations

import hashlib
import json
import resource
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from rapidinr import INRSet, UserError, load
from rapidinr.codec import fileformat
from rapidinr.core.config import Arch

CASES = {"flip": 700, "truncate": 200, "insert": 300, "length": 200, "json": 1000, "resign": 600,
         "packed": 150}  # packed: per compressed variant (4 of them)
OUTCOMES: dict[str, int] = {"loaded": 0, "refused": 0}
PEAK_BEFORE_MB: list[float] = []  # the process's peak RSS when this file's first test starts
FUZZ = settings(max_examples=1, deadline=timedelta(seconds=10), database=None,
                suppress_health_check=list(HealthCheck), derandomize=False)


def valid_bytes(tmp: Path) -> bytes:
    """A small valid file: 3 gray 2×3 images, a 1x2 SIREN, labels and class names."""
    g = torch.Generator().manual_seed(0)
    arch = Arch(1, 2, 1)
    params = torch.randn(3, arch.n_params, generator=g)  # (3, 9)
    inrs = INRSet(params, arch, 2, 3, torch.tensor([0, 1, 1]), ["a", "b"], torch.tensor([20.0, 21.0, 22.5]),
                  {"source": "fuzz"})
    path = tmp / "valid.rinr"
    inrs.save(path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> bytes:
    return valid_bytes(tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzzcase") / "case.rinr"


def split(data: bytes) -> tuple[dict, dict, bytes]:
    size = int.from_bytes(data[:8], "little")
    table = json.loads(data[8 : 8 + size])
    ours = json.loads(table["__metadata__"]["rapidinr"])
    return table, ours, data[8 + size :]


def join(table: dict, ours: dict | None, payload: bytes, resign: bool = False) -> bytes:
    """Reassemble a file (header padded to 8 bytes as safetensors writes it)."""
    table = dict(table)
    if ours is not None:
        if resign:  # as the writer signs: version 2 covers the canonical header too
            entries = {k: v for k, v in table.items() if k != "__metadata__"}
            try:
                ours = {**ours, fileformat.DIGEST_KEY: hashlib.sha256(
                    fileformat.canonical_header(ours, entries) + payload).hexdigest()}
            except (TypeError, ValueError):  # a mutation JSON cannot canonicalize: left unsigned
                pass
        table["__metadata__"] = {**table.get("__metadata__", {}), "rapidinr": json.dumps(ours)}
    head = json.dumps(table).encode()
    head += b" " * (-len(head) % 8)
    return len(head).to_bytes(8, "little") + head + payload


def check(data: bytes, path: Path) -> str:
    """Load the bytes; success must give a usable, consistent set; failure must be a UserError."""
    path.write_bytes(data)
    try:
        inrs = load(path)
    except UserError as err:
        message = str(err)
        assert message and "\n" not in message and str(path) in message
        OUTCOMES["refused"] += 1
        return "refused"
    info = inrs.info()
    assert info["images"] == len(inrs) == inrs.dense_params().shape[0]
    assert inrs.dense_params().shape[1] == inrs.arch.n_params and torch.isfinite(inrs.dense_params()).all()
    held = sum(t.numel() * t.element_size() for t in inrs.tensors().values())
    assert held <= len(data)  # nothing was allocated beyond what the file holds
    if inrs.labels is not None and len(inrs):
        assert 0 <= int(inrs.labels.min()) and (not inrs.class_names or int(inrs.labels.max()) < len(inrs.class_names))
    if len(inrs) and inrs.height * inrs.width <= 4096:
        out = inrs.decode([0])
        assert out.shape == (1, inrs.channels, inrs.height, inrs.width)
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    OUTCOMES["loaded"] += 1
    return "loaded"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["F32", "I64", "U8", "BOOL", "F64", "dense-f32", "", "rapidinr"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)


def paths_of(value, prefix=()):
    """Every key path into a JSON value (dict keys and list positions)."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            out += paths_of(inner, prefix + (key,))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            out += paths_of(inner, prefix + (index,))
    return out


def edit(value, path, new, delete: bool):
    """A deep copy of ``value`` with the item at ``path`` replaced (or deleted)."""
    value = json.loads(json.dumps(value))
    holder = value
    for key in path[:-1]:
        holder = holder[key]
    if delete:
        del holder[path[-1]]
    else:
        holder[path[-1]] = new
    return value


# -- the tests -------------------------------------------------------------------------------------

def test_the_unmutated_file_loads(valid, scratch):
    assert check(valid, scratch) == "loaded"
    table, ours, payload = split(valid)
    assert check(join(table, ours, payload), scratch) == "loaded"  # the reassembly itself is faithful


@seed(61)
@settings(FUZZ, max_examples=CASES["flip"])
@given(data=st.data())
def test_byte_flips(valid, scratch, data):
    raw = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    check(bytes(raw), scratch)


@seed(62)
@settings(FUZZ, max_examples=CASES["truncate"])
@given(data=st.data())
def test_truncations(valid, scratch, data):
    assert check(valid[: data.draw(st.integers(0, len(valid) - 1))], scratch) == "refused"


@seed(63)
@settings(FUZZ, max_examples=CASES["insert"])
@given(data=st.data())
def test_insertions(valid, scratch, data):
    at = data.draw(st.integers(0, len(valid)))
    check(valid[:at] + data.draw(st.binary(min_size=1, max_size=16)) + valid[at:], scratch)


@seed(64)
@settings(FUZZ, max_examples=CASES["length"])
@given(data=st.data())
def test_header_length_edits(valid, scratch, data):
    real = int.from_bytes(valid[:8], "little")
    size = data.draw(st.integers(0, 2**64 - 1) | st.integers(max(real - 64, 0), real + 64) | st.just(2**63))
    if size != real:
        assert check(size.to_bytes(8, "little") + valid[8:], scratch) == "refused"


@seed(65)
@settings(FUZZ, max_examples=CASES["json"])
@given(data=st.data())
def test_json_edits(valid, scratch, data):
    """Change or delete one item of the tensor table or of our header; sometimes re-sign the payload."""
    table, ours, payload = split(valid)
    del table["__metadata__"]
    target = data.draw(st.sampled_from(["table", "ours"]))
    doc = table if target == "table" else ours
    path = data.draw(st.sampled_from(paths_of(doc)))
    new = data.draw(JSON_VALUES | st.integers(-3, 3) | st.integers(2**31 - 2, 2**31 + 2))
    doc = edit(doc, path, new, data.draw(st.booleans()))
    resign = data.draw(st.booleans())
    if target == "table":
        check(join(doc, ours, payload, resign), scratch)
    else:
        check(join(table, doc, payload, resign), scratch)


@seed(66)
@settings(FUZZ, max_examples=CASES["resign"])
@given(data=st.data())
def test_payload_edits_with_a_valid_checksum(valid, scratch, data):
    """Past the checksum: NaN weights, labels out of range, odd PSNRs must still be caught."""
    table, ours, payload = split(valid)
    del table["__metadata__"]
    raw = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0xC0])) if data.draw(st.booleans()) else raw[at] ^ 0xFF
    check(join(table, ours, bytes(raw), resign=True), scratch)


PACKED = [(8, None), (16, None), (32, None), (8, "zstd")]  # quantized, pruned-only, zstd stage


def packed_bytes(tmp: Path, bits: int, lossless) -> bytes:
    """A pruned (about 40 % zeros) and quantized file through the compressed store."""
    from rapidinr.codec import store

    if not hasattr(store, "PackedStore"):
        pytest.skip("no compressed store in this build")
    if lossless == "zstd":
        pytest.importorskip("zstandard")
    g = torch.Generator().manual_seed(1)
    arch = Arch(2, 4, 1)
    params = torch.randn(3, arch.n_params, generator=g)  # (3, 37)
    params[params.abs() < 0.5] = 0
    packed = store.PackedStore.from_params(params, arch, bits=bits, lossless=lossless)
    inrs = INRSet(packed, arch, 2, 3, torch.tensor([0, 1, 1]), ["a", "b"], torch.tensor([20.0, 21.0, 22.5]))
    path = tmp / f"packed-{bits}-{lossless}.rinr"
    inrs.save(path)
    return path.read_bytes()


@pytest.mark.parametrize("bits,lossless", PACKED)
def test_compressed_files(tmp_path_factory, scratch, bits, lossless):
    """The compressed store's own fields (mask coding, codes, scales, zstd table) under mutation."""
    valid = packed_bytes(tmp_path_factory.mktemp("packed"), bits, lossless)
    assert check(valid, scratch) == "loaded"
    table, ours, payload = split(valid)
    del table["__metadata__"]

    @seed(67 + bits)
    @settings(FUZZ, max_examples=CASES["packed"])
    @given(data=st.data())
    def mutate(data):
        kind = data.draw(st.sampled_from(["flip", "resign", "json"]))
        if kind == "flip":
            raw = bytearray(valid)
            for _ in range(data.draw(st.integers(1, 4))):
                raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
            check(bytes(raw), scratch)
        elif kind == "resign":
            raw = bytearray(payload)
            for _ in range(data.draw(st.integers(1, 4))):
                raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
            check(join(table, ours, bytes(raw), resign=True), scratch)
        else:
            path = data.draw(st.sampled_from(paths_of(ours)))
            new = data.draw(JSON_VALUES | st.sampled_from([7, 8, 16, 32, 2**31, 2**62, "zstd", "none", "hidden", "all"])
                            | st.sampled_from(["bitmask", "index", "rice", "dense"]))
            check(join(table, edit(ours, path, new, data.draw(st.booleans())), payload, data.draw(st.booleans())),
                  scratch)

    mutate()


def test_hostile_headers_are_refused_before_any_allocation(valid, scratch):
    table, ours, payload = split(valid)
    del table["__metadata__"]
    name = next(iter(table))
    huge = edit(table, (name, "shape"), [2**39, 2**39], False)
    assert check(join(huge, ours, payload, True), scratch) == "refused"
    deep = b"[" * 100_000 + b"]" * 100_000
    assert check(len(deep).to_bytes(8, "little") + deep, scratch) == "refused"
    big_number = ('{"__metadata__": {"rapidinr": "{}"}, "x": ' + "9" * 5000 + "}").encode()
    assert check(len(big_number).to_bytes(8, "little") + big_number, scratch) == "refused"
    assert check(join(table, edit(ours, ("images",), 2**31, False), payload, True), scratch) == "refused"
    wide = edit(ours, ("arch",), {"layers": 64, "hidden": 1024, "w0": 30.0, "channels": 1}, False)
    assert check(join(table, wide, payload, True), scratch) == "refused"  # 67 M weights an image: no


@pytest.fixture(autouse=True, scope="module")
def _peak_before_fuzzing():
    """Peak RSS as the fuzzing starts (not at import: in a full run, earlier tests raise it first).

    ru_maxrss is a high-water mark, so after a hungrier earlier test this check can only catch a
    fuzz case that climbs past that mark; run this file alone for the strict version.
    """
    PEAK_BEFORE_MB.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    yield


def test_fuzzing_never_grew_memory_much():
    """Run last in this file: the peak resident size stays small for kilobyte-sized inputs."""
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nfuzz outcomes: {OUTCOMES}; peak RSS {PEAK_BEFORE_MB[0]:.0f} MB before, {peak_mb:.0f} MB after")
    assert peak_mb - PEAK_BEFORE_MB[0] < 256, "a kilobyte-sized file made the reader allocate hundreds of MB"


def test_a_huge_file_is_refused_from_its_header_alone(valid, tmp_path):
    """A valid header followed by 4 GB (sparse) is refused before the payload is read into memory."""
    size = int.from_bytes(valid[:8], "little")
    big = tmp_path / "big.rinr"
    with open(big, "wb") as handle:
        handle.write(valid[: 8 + size])
        handle.truncate(4 << 30)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UserError, match="payload size does not match"):
        load(big)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < (256 << 10)  # KB: < 256 MB more
