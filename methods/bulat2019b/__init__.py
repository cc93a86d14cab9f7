"""Bulat, Kossaifi, Tzimiropoulos & Pantic 2019: Matrix and tensor decompositions for training
binary neural networks (SVD / Tucker / holistic Tucker re-parametrization of the binary
weights, learned scaling factors).

The plugin is its paper.yaml for now. The paper's own hourglass is built from pre-activation
*basic* blocks (sec. 2.1 and 5.1), which the core does not offer yet; the HPM block of
bulat2017 is imported for the "HBC [4]" row of Table 3.
"""
import methods.bulat2017  # noqa: F401  (the "hpm" block)
