"""FTVSR: compressed video super-resolution (Qiu et al., ECCV 2022), as a reproducible pipeline."""

__version__ = "0.1.0"
