"""The ``rapidinr`` command. ``main(argv)`` returns the exit code, so tests call it directly.

Every bad input ends as one line on stderr and exit code 2 (see :class:`UserError`).
"""
from __future__ import annotations

import argparse
import sys

from .commands import bench, decode, demo, encode, figures, info, rd, train
from .commands import meta as meta_init
from .errors import UserError

# Each verb module registers itself with add(subparsers); a new verb is one module and one entry here.
VERBS = [encode, info, decode, demo, train, bench, rd, figures, meta_init]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as one line and exit code 2 (no usage dump)."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rapidinr", description="Rapid-INR: datasets as implicit neural representations")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"rapidinr {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    for verb in VERBS:
        verb.add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except UserError as err:
        print(f"rapidinr: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rapidinr: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())
