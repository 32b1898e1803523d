"""`rapidinr decode`: decode a .rinr file's images to PNG files DIR/NNNNNN.png.

Nothing is overwritten unasked and nothing is left half-written: a folder that already holds
files needs ``--overwrite``; the PNGs are written into a private staging folder inside DIR and
renamed into place only once every one of them is written (a rename replaces a planted symlink,
never writes through it); on any failure the staging folder is removed and DIR is as it was.
Memory is bounded by ``--memory-mb``: images are decoded in batches that fit it, and a size
whose single image does not fit is refused before anything is decoded.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import torch
from PIL import Image

from rapidinr.cli.info import rinr_path
from rapidinr.codec.inrset import check_budget, load
from rapidinr.core.devices import resolve_device
from rapidinr.core.errors import UserError
from rapidinr.core.files import make_folder
from rapidinr.core.metrics import to_uint8
from rapidinr.sources.datasets import parse_size

MAX_BATCH = 256  # images decoded at once, at most
_INDEX = re.compile(r"[0-9]{1,10}", re.ASCII)  # ASCII digits only: int() also takes "0_1" and "٣"


def parse_indices(text: str | None, count: int) -> list[int] | None:
    """``--indices 0,3,7`` → [0, 3, 7]: ASCII digits, no repeats, each within the set."""
    if text is None:
        return None
    parts = [t.strip() for t in text.split(",")]
    if not all(_INDEX.fullmatch(t) for t in parts):
        raise UserError(f"--indices: expected comma-separated image indices such as 0,3,7, got {text!r}")
    indices = [int(t) for t in parts]
    bad = [i for i in indices if not 0 <= i < count]
    if bad:
        raise UserError(f"--indices: {bad[0]} is out of range (the set holds {count} images)")
    if len(set(indices)) != len(indices):
        twice = next(i for n, i in enumerate(indices) if i in indices[:n])
        raise UserError(f"--indices: {twice} is listed more than once")
    return indices


def add(sub):
    p = sub.add_parser("decode", help="decode images of a .rinr file to PNG files DIR/NNNNNN.png")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True, help="folder for the PNG files")
    p.add_argument("--size", help="decode at HxW (default: the encoded size)")
    p.add_argument("--indices", help="comma-separated image indices (default: all)")
    p.add_argument("--device", default=None)
    p.add_argument("--memory-mb", type=float, default=1024,
                   help="memory for decoded images at once (default 1024); a larger single image is refused")
    p.add_argument("--overwrite", action="store_true", help="write into a folder that already holds files, "
                   "replacing PNG files of the same names")
    p.set_defaults(run=run)


def _output_folder(out: Path, overwrite: bool) -> bool:
    """Check (and create) the output folder; returns whether this run created it."""
    if out.is_symlink():
        raise UserError(f"{out}: is a symbolic link; decode writes only into a real folder")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if out.is_dir():
        try:
            busy = next(out.iterdir(), None) is not None
        except OSError as err:
            raise UserError(f"{out}: cannot read folder ({err.strerror or err})") from None
        if busy and not overwrite:
            raise UserError(f"{out}: folder is not empty (pass --overwrite to write into it)")
        return False
    make_folder(out, exist_ok=False)
    return True


def run(args) -> int:
    budget = check_budget(args.memory_mb, "--memory-mb")
    inrs = load(rinr_path(args.file), resolve_device(args.device))
    indices = parse_indices(args.indices, len(inrs))
    height, width = parse_size(args.size) or (inrs.height, inrs.width)
    per_image_mb = inrs.channels * height * width * (4 + 1 + 1) / 2**20  # float decode, uint8, PNG buffer
    if per_image_mb > budget / 2:  # the other half: the decode's working slices
        said = f"--size {height}x{width}" if args.size is not None else f"decode at the stored {height}x{width}"
        raise UserError(f"{said}: one image needs {per_image_mb:.0f} MiB to decode, over half of "
                        f"--memory-mb {budget:g}; pass a smaller --size or a larger --memory-mb")
    batch_size = int(max(1, min(MAX_BATCH, budget / 2 // per_image_mb)))
    rows = indices if indices is not None else list(range(len(inrs)))
    out = Path(args.output)
    created = _output_folder(out, args.overwrite)
    staging, done = None, False
    try:
        staging = Path(tempfile.mkdtemp(prefix=".rapidinr-decode-", dir=out))
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            pixels = to_uint8(inrs.decode(torch.tensor(batch), (height, width), budget / 2)).cpu()  # (B, C, H, W)
            for index, image in zip(batch, pixels):
                array = image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()
                Image.fromarray(array).save(staging / f"{index:06d}.png")
        for index in rows:  # every PNG is whole: now they take their names (a symlink is replaced)
            (staging / f"{index:06d}.png").replace(out / f"{index:06d}.png")
        done = True
    except OSError as err:
        raise UserError(f"{out}: cannot write PNG ({err.strerror or err})") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if created and not done and not any(out.iterdir()):
            out.rmdir()  # a failed run leaves no folder it made
    print(f"wrote {len(rows)} PNG files to {out}")
    return 0
