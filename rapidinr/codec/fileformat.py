"""The .rinr file: one safetensors file, a versioned JSON header and a digest over both.

Layout (safetensors, https://github.com/huggingface/safetensors): 8-byte little-endian header
length, a JSON header (tensor table plus ``__metadata__``), then the raw tensor bytes. Our header
lives in ``__metadata__["rapidinr"]`` as a JSON string and carries ``format_version`` and
``file_sha256``: the SHA-256 of the *canonical* header (our header without the digest and the tensor
table, each as sorted compact JSON) followed by every payload byte. So a file verifies itself:
an edit of any field that means something (``w0``, ``height``, class names, a tensor's shape or
offsets) is a digest mismatch, while whitespace or key order, which mean nothing, are not.
Duplicate JSON keys are refused (a reader that keeps the first and one that keeps the last
would disagree about the same bytes).

Version 1 files (``payload_sha256`` over the payload only) still read, with a warning that their
header is unprotected.

This module alone reads and writes the container (header, tensor table, digest); what the
tensors hold (quantized codes, packed masks, zstd frames) is laid out by the stores
(:mod:`rapidinr.codec.store`). Reading checks the header size, the JSON,
every dtype, shape and offset *before* any tensor is built, then reads each tensor straight
into its own memory while hashing it (never the whole file into a buffer to copy from), and never executes
anything from the file (raw numbers only; no pickle anywhere). Writing serializes once: the
header goes out with a placeholder digest, the payload is hashed while it is written, and the
digest is written into its slot before the atomic rename (:func:`rapidinr.core.files.write_atomic`).
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from rapidinr.core.errors import UserError
from rapidinr.core.files import write_atomic
from rapidinr.core.version import __version__

MAGIC_KEY = "rapidinr"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
DIGEST_KEY = "file_sha256"  # version 2: canonical header + payload (headers may hold a "sha256" of their own)
V1_DIGEST_KEY = "payload_sha256"  # version 1: payload only
SUFFIX = ".rinr"
MAX_HEADER_BYTES = 64 << 20  # a header past this is corrupt (ours are a few kB per class list)
DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
TORCH_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
                "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
_NAMES = {v: k for k, v in TORCH_DTYPES.items()}
_PLACEHOLDER = "0" * 64  # the digest's slot while the payload is written (same length as a digest)


class FormatWarning(UserWarning):
    """A file that reads, but with less protection than the current format gives."""


def _fail(path, why: str) -> UserError:
    return UserError(f"{path}: {why}")


def _package_version() -> str:
    return __version__


# -- the canonical header the digest covers --------------------------------------------------------
def _compact(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def canonical_header(header: dict, table: dict) -> bytes:
    """What the version-2 digest covers before the payload: our header (without its digest) and
    the tensor table (name → dtype, shape, offsets), each as sorted compact JSON."""
    ours = {k: v for k, v in header.items() if k != DIGEST_KEY}
    return b"rapidinr-header\n" + _compact(ours) + b"\n" + _compact(table) + b"\n"


def _no_duplicates(pairs: list) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _strict_json(text: str):
    return json.loads(text, object_pairs_hook=_no_duplicates)


# -- writing -----------------------------------------------------------------------------------------
def _table(specs: dict[str, tuple[torch.dtype, list[int]]]) -> tuple[dict, list[str], int]:
    """(tensor table, names in payload order, payload size) for tensors of these (dtype, shape),
    ordered as safetensors orders them (widest dtype first, then by name) so every tensor stays aligned."""
    for name, (dtype, _) in specs.items():
        if dtype not in _NAMES:
            raise UserError(f"tensor {name!r}: dtype {dtype} cannot be stored")
    width = {name: torch.empty(0, dtype=dtype).element_size() for name, (dtype, _) in specs.items()}
    order = sorted(specs, key=lambda k: (-width[k], k))
    table, offset = {}, 0
    for name in order:
        dtype, shape = specs[name]
        size = width[name]
        for d in shape:
            size *= int(d)
        table[name] = {"dtype": _NAMES[dtype], "shape": [int(d) for d in shape], "data_offsets": [offset, offset + size]}
        offset += size
    return table, order, offset


def _bytes_of(t: torch.Tensor) -> memoryview:
    """A tensor's raw bytes, as a view (a copy only where it is not a contiguous CPU tensor)."""
    t = t.detach().cpu().contiguous()
    return memoryview(t.reshape(-1).view(torch.uint8).numpy() if t.numel() else np.empty(0, np.uint8))


def _specs(tensors: dict[str, torch.Tensor]) -> dict:
    return {name: (t.dtype, list(t.shape)) for name, t in tensors.items()}


def _head_bytes(header: dict, table: dict) -> bytes:
    """Length prefix + the safetensors JSON header, padded with spaces to 8 bytes."""
    text = json.dumps({"__metadata__": {MAGIC_KEY: json.dumps(header)}, **table}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


def _full_header(header: dict) -> dict:
    if DIGEST_KEY in header or V1_DIGEST_KEY in header:
        raise UserError(f"header fields {DIGEST_KEY!r} and {V1_DIGEST_KEY!r} are the file's own")
    # the digest's key first, so its slot is the first one in the header (nested meta may hold another)
    return {DIGEST_KEY: _PLACEHOLDER, "format": MAGIC_KEY, "format_version": FORMAT_VERSION, **header}


@dataclass
class FileForm:
    """A store as its file holds it (each store's ``file_form``): the header's store fields, each
    file tensor's (dtype, shape) and ``pieces(name)``, that tensor's pieces in order (a chunk's rows
    each, say), so that :func:`write_pieces` writes a set that is never whole in memory. A store
    made from chunks reads them through a callable giving a fresh iterator per pass."""

    fields: dict
    specs: dict[str, tuple[torch.dtype, list[int]]]
    pieces: Callable[[str], Iterable[torch.Tensor]]

    @classmethod
    def whole(cls, fields: dict, tensors: dict[str, torch.Tensor]) -> "FileForm":
        """The form of tensors already whole in memory: one piece each."""
        return cls(fields, _specs(tensors), lambda name: [tensors[name]])

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every file tensor, whole (a store that is whole anyway: one piece each, no copy)."""
        out = {}
        for name, (dtype, shape) in self.specs.items():
            parts = list(self.pieces(name))
            whole = parts[0] if len(parts) == 1 else (torch.cat([t.reshape(-1) for t in parts]) if parts
                                                       else torch.zeros(0, dtype=dtype))
            out[name] = whole.reshape(shape)
        return out


def write(path: str | Path, header: dict, tensors: dict[str, torch.Tensor]) -> int:
    """Write a .rinr file atomically, serializing once; returns its size in bytes."""
    form = FileForm.whole(header, tensors)
    return write_pieces(path, form.fields, form.specs, form.pieces)


def write_pieces(path: str | Path, header: dict, specs: dict[str, tuple[torch.dtype, list[int]]], pieces) -> int:
    """Write a .rinr file whose tensors arrive in pieces: ``specs`` name → (dtype, shape) fixes the
    table, and ``pieces(name)`` yields that tensor's pieces in order (row blocks, say: each piece's
    bytes follow the last), so a set larger than memory is written without ever being whole. The
    payload is hashed as it is written, the digest put in its slot before the atomic rename.
    Returns the file's size in bytes; pieces that do not add up to the table are an error."""
    full = _full_header(header)
    table, order, payload = _table(specs)
    head = _head_bytes(full, table)
    key = f'{{\\"{DIGEST_KEY}\\": \\"'.encode()  # {\"file_sha256\": \" inside the JSON-quoted header
    slot = head.index(key + _PLACEHOLDER.encode()) + len(key)

    def emit(handle) -> None:
        digest = hashlib.sha256(canonical_header(full, table))
        handle.write(head)
        for name in order:  # hashed as written: one pass over the payload
            begin, end = table[name]["data_offsets"]
            written = 0
            for piece in pieces(name):
                if piece.dtype != specs[name][0]:
                    raise ValueError(f"tensor {name!r}: a piece of dtype {piece.dtype}, not {specs[name][0]}")
                view = _bytes_of(piece)
                handle.write(view)
                digest.update(view)
                written += view.nbytes
                del piece, view  # released before the next piece is made
            if written != end - begin:
                raise ValueError(f"tensor {name!r}: its pieces hold {written} bytes, its shape {end - begin}")
        handle.seek(slot)
        handle.write(digest.hexdigest().encode())

    write_atomic(path, emit)
    return len(head) + payload


def serialized_size(header: dict, tensors: dict[str, torch.Tensor]) -> int:
    """The exact size ``write`` would produce, from the tensor table alone (nothing is serialized)."""
    table, _, payload = _table(_specs(tensors))
    return len(_head_bytes(_full_header(header), table)) + payload


def _serialize(tensors: dict[str, torch.Tensor], header: dict) -> bytes:
    """The bytes of a file with exactly this header (its ``format``/``format_version`` as given),
    the digest of its version filled in: for tests that build other versions or edited headers."""
    table, order, _ = _table(_specs(tensors))
    views = [_bytes_of(tensors[name]) for name in order]
    if header.get("format_version") == 1:
        digest = hashlib.sha256()
        for view in views:
            digest.update(view)
        header = {**header, V1_DIGEST_KEY: digest.hexdigest()}
    else:
        digest = hashlib.sha256(canonical_header(header, table))
        for view in views:
            digest.update(view)
        header = {**header, DIGEST_KEY: digest.hexdigest()}
    return _head_bytes(header, table) + b"".join(bytes(v) for v in views)


# -- reading -----------------------------------------------------------------------------------------
def parse_header(path, data: bytes) -> tuple[dict, dict, int]:
    """Check the safetensors framing and our header. Returns (our header, tensor table, payload start)."""
    if len(data) < 8:
        raise _fail(path, "not a .rinr file (too short)")
    size = int.from_bytes(data[:8], "little")
    if size < 2 or size > MAX_HEADER_BYTES or 8 + size > len(data):
        raise _fail(path, "not a .rinr file, or truncated (bad header length)")
    try:
        table = _strict_json(data[8 : 8 + size].decode("utf-8"))
    except (ValueError, RecursionError) as err:  # bad UTF-8 or JSON, a huge number, absurd nesting
        if str(err).startswith("duplicate key"):
            raise _fail(path, f"corrupt header ({str(err)[:80]})") from None
        raise _fail(path, "not a .rinr file (header is not JSON)") from None
    if not isinstance(table, dict) or not isinstance(table.get("__metadata__"), dict):
        raise _fail(path, "not a .rinr file (no rapidinr header)")
    raw = table.pop("__metadata__").get(MAGIC_KEY)
    try:
        header = _strict_json(raw) if isinstance(raw, str) else None
    except ValueError as err:
        if str(err).startswith("duplicate key"):
            raise _fail(path, f"corrupt header ({str(err)[:80]})") from None
        header = None
    except RecursionError:
        header = None
    if not isinstance(header, dict) or header.get("format") != MAGIC_KEY:
        raise _fail(path, "not a .rinr file (no rapidinr header)")
    version = header.get("format_version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        newer = isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION
        said = "has no format version" if version is None else f"is .rinr format version {version!r}"
        readable = " and ".join(str(v) for v in READABLE_VERSIONS)
        raise _fail(
            path,
            f"{said}; this rapidinr {_package_version()} reads versions {readable}: "
            + ("upgrade rapidinr (pip install -U rapidinr) to read it" if newer
               else "re-encode the images with this rapidinr (rapidinr encode SOURCE -o FILE --overwrite)"),
        )
    return header, table, 8 + size


def check_table(path, table: dict, payload_bytes: int) -> dict[str, tuple[str, list[int], int, int]]:
    """Every tensor entry: a known dtype, a sane shape, offsets that tile the payload exactly.
    Returns name → (dtype, shape, begin, end)."""
    spans, out = [], {}
    for name, entry in table.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise _fail(path, f"corrupt tensor entry {name!r}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise _fail(path, f"tensor {name!r} has unsupported dtype {dtype!r}")
        if not (isinstance(shape, list) and len(shape) <= 8
                and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in shape)):
            raise _fail(path, f"tensor {name!r} has a bad shape")
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise _fail(path, f"tensor {name!r} has bad offsets")
        count = 1
        for d in shape:
            count *= d
        begin, end = offsets
        if not (0 <= begin <= end <= payload_bytes) or end - begin != count * DTYPES[dtype]:
            raise _fail(path, f"tensor {name!r} does not fit the payload (truncated or corrupt)")
        spans.append((begin, end))
        out[name] = (dtype, shape, begin, end)
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise _fail(path, "payload has gaps or overlaps (corrupt)")
        position = end
    if position != payload_bytes:
        raise _fail(path, "payload size does not match its tensors (truncated or corrupt)")
    return out


def _read_exactly(handle, size: int) -> torch.Tensor:
    """The next ``size`` bytes of ``handle`` read straight into a new uint8 tensor (no copy)."""
    out = np.empty(size, np.uint8)
    view, done = memoryview(out), 0
    while done < size:
        got = handle.readinto(view[done:])
        if not got:
            raise EOFError
        done += got
    return torch.from_numpy(out)


def read(path: str | Path) -> tuple[dict, dict[str, torch.Tensor], int]:
    """Read and verify a .rinr file. Returns (header, tensors on CPU, file size in bytes).

    The header is checked first; then each tensor is read straight into its own memory and hashed
    as it arrives (a streaming hash: the file is never held whole, nor copied), so what is verified
    is exactly what is returned, and memory holds the tensors once.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        with open(path, "rb", buffering=0) as handle:  # one open file: a concurrent rename cannot mix two files
            total = os.fstat(handle.fileno()).st_size
            head = handle.read(8)
            size = int.from_bytes(head, "little") if len(head) == 8 else 0
            if 2 <= size <= MAX_HEADER_BYTES and 8 + size <= total:
                head += _read_exactly(handle, size).numpy().tobytes()
            # the header is checked against the file's size before the payload is touched at all
            header, table, start = parse_header(path, head)
            entries = check_table(path, table, total - start)
            version = header["format_version"]
            digest = hashlib.sha256(canonical_header(header, table) if version >= 2 else b"")
            tensors = {}
            for name, (dtype, shape, begin, end) in sorted(entries.items(), key=lambda e: e[1][2]):
                handle.seek(start + begin)
                flat = _read_exactly(handle, end - begin)  # (bytes,) uint8
                digest.update(flat.numpy())
                tensors[name] = (flat.view(TORCH_DTYPES[dtype]) if flat.numel()
                                 else torch.empty(0, dtype=TORCH_DTYPES[dtype])).reshape(shape)
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None
    except EOFError:  # shorter than its size said a moment ago
        raise _fail(path, "the file changed while it was read") from None
    key = DIGEST_KEY if version >= 2 else V1_DIGEST_KEY
    if digest.hexdigest() != header.get(key):
        raise _fail(path, "checksum mismatch: the file is corrupt or was edited")
    if version == 1:
        warnings.warn(f"{path}: .rinr format version 1: its header is not covered by the checksum "
                      "(re-encode it to protect it)", FormatWarning, stacklevel=2)
    return header, tensors, total
