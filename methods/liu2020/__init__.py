"""Liu, Li, Wang, Zha & Huang, Neurocomputing 2020: Local-binarized very deep residual network
for visual categorization (the local binary residual block, LBB: fixed sparse Bernoulli
{-1, 0, +1} 3x3 filters between learned real 1x1 filters; LBRN-S / LBRN-P).
"""
