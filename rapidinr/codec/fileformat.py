"""The .rinr file: one safetensors file, a versioned JSON header and a checksummed payload.

Layout (safetensors, https://github.com/huggingface/safetensors): 8-byte little-endian header
length, a JSON header (tensor table plus ``__metadata__``), then the raw tensor bytes. Our header
lives in ``__metadata__["rapidinr"]`` as a JSON string and carries ``format_version`` and
``payload_sha256``, the SHA-256 of every byte after the safetensors header.

This is the only module that knows the file's bytes. Reading checks the header size, the JSON,
every dtype, shape and offset, and the checksum *before* any tensor is built, and never executes
anything from the file (safetensors holds raw numbers only; no pickle anywhere).
Writing goes to a temporary file in the same folder, fsynced, then renamed over the target, so
a reader never sees a half-written file and a killed writer leaves the old file intact.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from rapidinr.core.errors import UserError
from rapidinr.core.files import write_atomic
from rapidinr.core.version import __version__

MAGIC_KEY = "rapidinr"
FORMAT_VERSION = 1
SUFFIX = ".rinr"
MAX_HEADER_BYTES = 64 << 20  # a header past this is corrupt (ours are a few kB per class list)
DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _serialize(tensors: dict[str, torch.Tensor], header: dict) -> bytes:
    """safetensors bytes with our header, its checksum filled in over the payload."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    draft = st_save(tensors, metadata={MAGIC_KEY: json.dumps({**header, "payload_sha256": ""})})
    start = 8 + int.from_bytes(draft[:8], "little")
    digest = hashlib.sha256(memoryview(draft)[start:]).hexdigest()
    return st_save(tensors, metadata={MAGIC_KEY: json.dumps({**header, "payload_sha256": digest})})


def write(path: str | Path, header: dict, tensors: dict[str, torch.Tensor]) -> int:
    """Write a .rinr file atomically; returns its size in bytes."""
    data = _serialize(tensors, {"format": MAGIC_KEY, "format_version": FORMAT_VERSION, **header})
    write_atomic(path, data)
    return len(data)


def serialized_size(header: dict, tensors: dict[str, torch.Tensor]) -> int:
    """The exact size ``write`` would produce, without writing."""
    return len(_serialize(tensors, {"format": MAGIC_KEY, "format_version": FORMAT_VERSION, **header}))


def _package_version() -> str:
    return __version__


def _fail(path, why: str) -> UserError:
    return UserError(f"{path}: {why}")


def parse_header(path, data: bytes) -> tuple[dict, dict, int]:
    """Check the safetensors framing and our header. Returns (our header, tensor table, payload start)."""
    if len(data) < 8:
        raise _fail(path, "not a .rinr file (too short)")
    size = int.from_bytes(data[:8], "little")
    if size < 2 or size > MAX_HEADER_BYTES or 8 + size > len(data):
        raise _fail(path, "not a .rinr file, or truncated (bad header length)")
    try:
        table = json.loads(data[8 : 8 + size].decode("utf-8"))
    except (ValueError, RecursionError):  # bad UTF-8 or JSON, a huge number, absurd nesting
        raise _fail(path, "not a .rinr file (header is not JSON)") from None
    if not isinstance(table, dict) or not isinstance(table.get("__metadata__"), dict):
        raise _fail(path, "not a .rinr file (no rapidinr header)")
    raw = table.pop("__metadata__").get(MAGIC_KEY)
    try:
        header = json.loads(raw) if isinstance(raw, str) else None
    except (ValueError, RecursionError):
        header = None
    if not isinstance(header, dict) or header.get("format") != MAGIC_KEY:
        raise _fail(path, "not a .rinr file (no rapidinr header)")
    version = header.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        newer = isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION
        said = "has no format version" if version is None else f"is .rinr format version {version!r}"
        raise _fail(
            path,
            f"{said}; this rapidinr {_package_version()} reads version {FORMAT_VERSION}: "
            + ("upgrade rapidinr (pip install -U rapidinr) to read it" if newer
               else "re-encode the images with this rapidinr (rapidinr encode SOURCE -o FILE --overwrite)"),
        )
    return header, table, 8 + size


def check_table(path, table: dict, payload_bytes: int) -> dict[str, tuple[str, list[int]]]:
    """Every tensor entry: a known dtype, a sane shape, offsets that tile the payload exactly."""
    spans, out = [], {}
    for name, entry in table.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise _fail(path, f"corrupt tensor entry {name!r}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise _fail(path, f"tensor {name!r} has unsupported dtype {dtype!r}")
        if not (isinstance(shape, list) and len(shape) <= 8 and all(isinstance(d, int) and 0 <= d < 2**40 for d in shape)):
            raise _fail(path, f"tensor {name!r} has a bad shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise _fail(path, f"tensor {name!r} has bad offsets")
        count = 1
        for d in shape:
            count *= d
        begin, end = offsets
        if not (0 <= begin <= end <= payload_bytes) or end - begin != count * DTYPES[dtype]:
            raise _fail(path, f"tensor {name!r} does not fit the payload (truncated or corrupt)")
        spans.append((begin, end))
        out[name] = (dtype, shape)
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise _fail(path, "payload has gaps or overlaps (corrupt)")
        position = end
    if position != payload_bytes:
        raise _fail(path, "payload size does not match its tensors (truncated or corrupt)")
    return out


def read(path: str | Path) -> tuple[dict, dict[str, torch.Tensor], int]:
    """Read and verify a .rinr file. Returns (header, tensors on CPU, file size in bytes)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        with open(path, "rb") as handle:  # one open file: a concurrent rename cannot mix two files
            total = os.fstat(handle.fileno()).st_size
            head = handle.read(8)
            size = int.from_bytes(head, "little") if len(head) == 8 else 0
            if 2 <= size <= MAX_HEADER_BYTES and 8 + size <= total:
                head += handle.read(size)
            # the header is checked against the file's size before the payload is read at all
            header, table, start = parse_header(path, head)
            check_table(path, table, total - start)
            handle.seek(0)
            data = handle.read()
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(data) != total:
        raise _fail(path, "the file changed while it was read")
    digest = hashlib.sha256(memoryview(data)[start:]).hexdigest()
    if digest != header.get("payload_sha256"):
        raise _fail(path, "checksum mismatch: the file is corrupt")
    try:
        tensors = st_load(data)
    except Exception as err:  # safetensors raises its own error type for anything malformed
        raise _fail(path, f"corrupt payload ({str(err).splitlines()[0][:120]})") from None
    return header, tensors, len(data)
