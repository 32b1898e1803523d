"""rapidinr: datasets stored as one small SIREN per image (Rapid-INR, Chen et al. 2023).

Public names: :func:`encode`, :func:`load`, :class:`INRSet`, the configs :class:`Arch` and
:class:`FitConfig`, and :class:`UserError`. The layers, each importing only those before it:
``core → sources → codec → encoding → training → study → cli``.
"""
from rapidinr.core.openmp import prefer_passive_waiting

prefer_passive_waiting()  # before anything imports torch: OpenMP workers sleep, not spin (core/openmp.py)

from rapidinr.codec.inrset import INRSet, load  # after the wait policy, on purpose
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.core.version import __version__
from rapidinr.encoding.runner import encode

__all__ = ["Arch", "FitConfig", "INRSet", "UserError", "encode", "load", "__version__"]
