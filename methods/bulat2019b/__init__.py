"""Bulat, Kossaifi, Tzimiropoulos & Pantic 2019: Matrix and tensor decompositions for training
binary neural networks (SVD / Tucker / holistic Tucker re-parametrization of the binary
weights, learned scaling factors).

The paper's own hourglass is built from pre-activation *basic* blocks (sec. 2.1 and 5.1),
registered as "basic" by blocks.py; the re-parametrizations and learned scaling factors are not
implemented yet. The HPM block of bulat2017 is imported for the "HBC [4]" row of Table 3.
"""
from . import blocks  # noqa: F401  (registers "basic")
import methods.bulat2017  # noqa: F401  (the "hpm" block)
