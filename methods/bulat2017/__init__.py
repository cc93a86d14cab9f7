"""Bulat & Tzimiropoulos, ICCV 2017: binary hourglass with the HPM block (registered as "hpm")."""
from . import blocks  # noqa: F401  (registers the block)
