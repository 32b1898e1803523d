"""Atomic file writes: a temporary file in the same folder, fsynced, renamed over the target, and
the folder fsynced, so the rename itself survives a power cut.

A reader never sees a half-written file and a killed writer leaves the old file intact; every
file the package writes (``.rinr``, results JSON, checkpoints, decoded PNGs) goes through
:func:`write_atomic`. The temporary is created with ``O_EXCL | O_NOFOLLOW`` and mode 0666, which
the process's umask trims as for any new file (no umask juggling), and the rename replaces a
symlink at the target rather than writing through it.
"""
from __future__ import annotations

import glob
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from rapidinr.core.errors import UserError


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a file system that cannot fsync a folder is let be."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # e.g. EINVAL on file systems without folder fsync: the file itself is fsynced
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Write ``data`` (bytes, or a function writing to a seekable binary handle) to ``path``
    through a temporary file and a rename; errors name the path."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    tmp_name = None
    try:
        for _ in range(100):  # a clash of 64 random bits is a stale temporary of this very name
            candidate = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
            try:
                fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
            except FileExistsError:
                continue
            tmp_name = candidate
            break
        else:
            raise FileExistsError(f"no free temporary name beside {path.name}")
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        _fsync_folder(folder)
    except OSError as err:
        raise UserError(f"{path}: cannot write ({err.strerror or err})") from None
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def remove_stale_temporaries(path: str | Path, older_than: float) -> list[Path]:
    """Delete temporaries of ``write_atomic(path)`` last modified before ``older_than`` (a time).

    A writer killed between creating its temporary and the rename leaves one behind; a live
    writer's temporary is newer than the caller's start, so it is left alone.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if tmp.is_file() and tmp.stat().st_mtime < older_than:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            pass  # gone already, or not ours to remove: never fail a finished encode over it
    return removed


def make_folder(path: Path, exist_ok: bool = True) -> None:
    """Create ``path`` and its parents; a failure (a file in the way, no permission) is one
    :class:`UserError` naming the folder."""
    try:
        Path(path).mkdir(parents=True, exist_ok=exist_ok)
    except OSError as err:
        raise UserError(f"{path}: cannot create folder ({err.strerror or err})") from None
