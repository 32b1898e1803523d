"""`rapidinr info`: describe a .rinr file (``--json`` for the machine-readable contract)."""
from __future__ import annotations

import json
from pathlib import Path

from rapidinr.codec.inrset import load
from rapidinr.core.errors import UserError


def add(sub):
    p = sub.add_parser("info", help="describe a .rinr file")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    info = load(rinr_path(args.file)).info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:>18}: {value}")
    return 0


def rinr_path(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if path.suffix != ".rinr":
        raise UserError(f"{path}: not a .rinr file (expected the .rinr suffix)")
    return path


