"""rapidinr: datasets stored as one small SIREN per image (Rapid-INR, Chen et al. 2023).

Public names: :func:`encode`, :func:`load`, :class:`INRSet`, the configs :class:`Arch` and
:class:`FitConfig`, and :class:`UserError`.
"""
from .config import Arch, FitConfig
from .encoder import encode
from .errors import UserError
from .inrset import INRSet, load

__version__ = "0.1.0"
__all__ = ["Arch", "FitConfig", "INRSet", "UserError", "encode", "load", "__version__"]
