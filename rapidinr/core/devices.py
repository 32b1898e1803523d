"""The one device check: a device string the user gave becomes a ``torch.device`` this machine can
use, or one clear error naming the option (``--device`` on the command line, ``device`` in Python)."""
from __future__ import annotations

import torch

from rapidinr.core.errors import UserError


def resolve_device(device, option: str = "--device") -> torch.device:
    """``None``/``"auto"`` → cuda when available, else cpu; cpu, cuda and cuda:N as given."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"{option}: unknown device {device!r} (use cpu, cuda or cuda:N)") from None
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"{option}: {device!r} is not supported (use cpu, cuda or cuda:N)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{option} {device!r}: CUDA is not available on this machine (use cpu)")
    return dev
