"""The structure profile: models measured at the paper's size, compared with published counts."""
import json

from torch import nn

from repro.cli import main
from repro.nn import ConvSpec, QuantConv2d
from repro.nn.structure import measure


def test_measure_counts_by_hand():
    real = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    binary = QuantConv2d(8, 4, 3, padding=1, input_quantizer="sign", kernel_quantizer="xnor_weight")
    model = nn.Sequential(real, binary)
    m = measure(model, (3, 10, 10))
    assert m["params_m"] * 1e6 == 3 * 8 * 9 + 8 * 4 * 9
    assert m["flops_g"] * 1e9 == 2 * 100 * 8 * 3 * 9  # real conv only, no bias
    assert m["binary_macs_g"] * 1e9 == 100 * 4 * 8 * 9
    assert m["params_binary_m"] * 1e6 == 8 * 4 * 9
    assert abs(m["size_packed_mb"] * 2**20 - (288 / 8 + 216 * 4)) < 1e-6
    assert abs(m["size_float32_mb"] * 2**20 - 504 * 4) < 1e-6


def test_liu2020_block_flops_convention():
    """A 256->256 Newell bottleneck at 64x64 is 1.745 GFLOPs by liu2020's eq. 7 without bias."""
    from repro.nn.blocks import Bottleneck
    m = measure(Bottleneck(256, 256, ConvSpec(binary=False)), (256, 64, 64))
    assert abs(m["flops_g"] - 1.745) < 0.001 and m["params_m"] == 0.212992


def test_structure_profile_through_the_cli(workdir, capsys):
    code = main(["run", "--paper", "bulat2019", "--table", "2", "--rows", "ref4_1stack,ref4_3stack",
                 "--profile", "structure", "--executor", "debug"])
    assert code == 0
    capsys.readouterr()
    assert main(["compare", "--paper", "bulat2019", "--table", "2", "--profile", "structure", "--format", "json"]) == 0
    cells = {(c["row"], c["metric"]): c for c in json.loads(capsys.readouterr().out)["cells"]}
    one = cells[("ref4_1stack", "params_m")]
    assert one["published"] == 6.2 and abs(one["reproduced"] - 6.220992) < 1e-6
    assert abs(one["delta_pct"]) < 3
    scored = cells[("ref4_1stack", "pckh_total")]  # structure runs measure, they do not score...
    assert scored["published"] == 76.6 and scored["reproduced"] is None and scored["profile"] is None  # ...but it stays shown
