"""Bulat, Tzimiropoulos, Kossaifi & Pantic 2019: improved training of binary networks.

Everything this paper adds is a training recipe the core already offers (post-conv
non-linearities, reverse-order initialization, progressive quantization, distillation), so
the plugin is its paper.yaml plus the HPM block of bulat2017 it builds on.
"""
import repro_methods.bulat2017  # noqa: F401  (the "hpm" block)
