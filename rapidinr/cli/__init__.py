"""The ``rapidinr`` command. ``main(argv)`` returns the exit code, so tests call it directly.

Every bad input ends as one line on stderr and exit code 2 (see :class:`UserError`).
"""
from __future__ import annotations

import argparse
import sys
import warnings

from rapidinr.cli import bench, decode, demo, encode, figures, info, meta_init, rd, train
from rapidinr.core.errors import UserError
from rapidinr.core.version import __version__

# Each verb module registers itself with add(subparsers); a new verb is one module and one entry here.
VERBS = [encode, info, decode, demo, train, bench, rd, figures, meta_init]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as one line and exit code 2 (no usage dump)."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rapidinr", description="Rapid-INR: datasets as implicit neural representations")

    parser.add_argument("--version", action="version", version=f"rapidinr {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    for verb in VERBS:
        verb.add(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """A warning (e.g. a version-1 file's unprotected header) as one line on stderr, no source line."""
    text = str(UserError(str(message)))  # control characters escaped, as in errors
    print(f"rapidinr: warning: {text}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
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
