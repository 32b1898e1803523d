"""`rapidinr decode`: decode a .rinr file's images to PNG files DIR/NNNNNN.png."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from rapidinr.cli.info import rinr_path
from rapidinr.codec.inrset import load
from rapidinr.core.errors import UserError
from rapidinr.core.metrics import to_uint8
from rapidinr.encoding.runner import resolve_device
from rapidinr.sources.datasets import parse_size


def parse_indices(text: str | None, count: int) -> list[int] | None:
    if text is None:
        return None
    try:
        indices = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"--indices: expected comma-separated integers, got {text!r}") from None
    bad = [i for i in indices if not 0 <= i < count]
    if bad:
        raise UserError(f"--indices: {bad[0]} is out of range (the set holds {count} images)")
    return indices


def add(sub):
    p = sub.add_parser("decode", help="decode images of a .rinr file to PNG files DIR/NNNNNN.png")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True, help="folder for the PNG files")
    p.add_argument("--size", help="decode at HxW (default: the encoded size)")
    p.add_argument("--indices", help="comma-separated image indices (default: all)")
    p.add_argument("--device", default=None)
    p.set_defaults(run=run)


def run(args) -> int:
    inrs = load(rinr_path(args.file), resolve_device(args.device))
    indices = parse_indices(args.indices, len(inrs))
    size = parse_size(args.size)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    rows = indices if indices is not None else list(range(len(inrs)))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{out}: cannot create folder ({err.strerror or err})") from None
    for start in range(0, len(rows), 256):
        batch = rows[start : start + 256]
        pixels = to_uint8(inrs.decode(torch.tensor(batch), size)).cpu()  # (B, C, H, W)
        for index, image in zip(batch, pixels):
            array = image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()
            try:
                Image.fromarray(array).save(out / f"{index:06d}.png")
            except OSError as err:
                raise UserError(f"{out}: cannot write PNG ({err.strerror or err})") from None
    print(f"wrote {len(rows)} PNG files to {out}")
    return 0


