"""Liu, Li, Wang, Zha & Huang, Neurocomputing 2020: Local-binarized very deep residual network
for visual categorization (the local binary residual block, LBB: fixed sparse Bernoulli
{-1, 0, +1} 3x3 filters between learned real 1x1 filters; LBRN-S / LBRN-P).

Importing it registers the "lbb" block (blocks.py) and the pyramid residual modules "prm" /
"prm_lbb" (prm.py, Yang et al.'s PRM and LBRN-P's); the HG-Binary / Binary rows of its tables
use bulat2017's "hpm" block.
"""
import repro_methods.bulat2017  # noqa: F401  (the "hpm" block of the Binary rows)

from . import blocks, prm  # noqa: F401  (register "lbb", "prm", "prm_lbb")
