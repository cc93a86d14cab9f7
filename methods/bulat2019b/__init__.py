"""Bulat, Kossaifi, Tzimiropoulos & Pantic 2019: Matrix and tensor decompositions for training
binary neural networks.

* blocks.py: the pre-activation *basic* block of the paper's hourglass (sec. 2.1, 5.1), "basic".
* reparam.py: the SVD / Tucker / holistic Tucker re-parametrizations of the binary weights
  (sec. 4.2), registered as ``reparam.kind`` svd / tucker / holistic_tucker.
* Learned scaling factors (sec. 4.3) are the core's ``conv.scale: learned``
  (repro.nn.quantizers.LearnedScale).

The HPM block of bulat2017 is imported for the "HBC [4]" row of Table 3.
"""
import repro_methods.bulat2017  # noqa: F401  (the "hpm" block)

from . import (
    blocks,  # noqa: F401  (registers "basic")
    reparam,  # noqa: F401  (registers "svd", "tucker", "holistic_tucker")
)
