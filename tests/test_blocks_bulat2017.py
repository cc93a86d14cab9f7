"""bulat2017's blocks of Fig. 4 (wider, wider_no1x1, ms, ms_no1x1, hpm) and bulat2019b's basic block:
shapes, conv-weight counts per block and per hourglass, and the rows they make runnable."""
import pytest
import torch

import repro_methods.bulat2017.blocks  # noqa: F401  (registers hpm, wider, wider_no1x1, ms, ms_no1x1)
import repro_methods.bulat2019b.blocks  # noqa: F401  (registers basic)
from repro.config import resolve
from repro.nn import ConvSpec, build_model, count_parameters
from repro.plugins import get_paper
from repro.registry import BLOCKS
from repro.tasks.pose import PoseTask

BINARY = ConvSpec(binary=True)
REAL = ConvSpec(binary=False)

# Conv weights of one 256 -> 256 block [computed by hand from the structures in blocks.py].
PER_BLOCK = {
    "bottleneck": 212_992,  # 1x1 256->128, 3x3 128->128, 1x1 128->256
    "hpm": 405_504,  # 3x3 256->128, 128->64, 64->64
    "wider": 720_896,  # 1x1 256->256, 3x3 256->256, 1x1 256->256
    "wider_no1x1": 589_824,  # 3x3 256->256
    "ms": 242_688,  # 1x1 256->64, 3x3 64->64 | 3x3 256->32, 3x3 256->32, 3x3 32->32 | 1x1 128->256
    "ms_no1x1": 626_688,  # 3x3 256->128 | 3x3 256->64, 3x3 256->64, 3x3 64->64
}


def _conv_weights(module):
    return count_parameters(module)["conv_weight_params"]


@pytest.mark.parametrize("block", sorted(PER_BLOCK))
@pytest.mark.parametrize("conv", [BINARY, REAL], ids=["binary", "real"])
def test_block_shape_and_count_256(block, conv):
    module = BLOCKS[block](256, 256, conv)
    assert _conv_weights(module) == PER_BLOCK[block]
    out = module(torch.randn(2, 256, 8, 8))
    assert out.shape == (2, 256, 8, 8) and torch.isfinite(out).all()


@pytest.mark.parametrize("block", ["wider", "wider_no1x1", "ms", "ms_no1x1"])
def test_width_changing_block_has_projection_skip(block):
    module = BLOCKS[block](64, 128, BINARY)
    assert module(torch.randn(2, 64, 6, 6)).shape == (2, 128, 6, 6)
    assert _conv_weights(module.skip) == 64 * 128


def test_wider_mid_ratio():
    assert _conv_weights(BLOCKS["wider"](256, 256, BINARY, mid_ratio=0.5)) == PER_BLOCK["bottleneck"]
    assert BLOCKS["wider"](256, 256, REAL, mid_ratio=0.765625).mid == 196
    with pytest.raises(ValueError):
        BLOCKS["wider"](256, 256, REAL, mid_ratio=0.0)


@pytest.mark.parametrize("block", ["ms", "ms_no1x1"])
def test_ms_pooled_branch(block):
    # 2x2 max-pool + nearest upsampling back to any input size (odd ones included), or a 3x3/1 pool.
    for pool_stride in (1, 2):
        module = BLOCKS[block](32, 32, BINARY, pool_stride=pool_stride)
        for size in (5, 8):
            assert module(torch.randn(2, 32, size, size)).shape == (2, 32, size, size)
    module = BLOCKS[block](256, 256, BINARY, split_3x3=0.25)
    three, five = module.right.conv3x3.conv, module.right.conv5x5[1].conv
    assert three.out_channels * 3 == five.out_channels  # a quarter of the branch to the 3x3
    with pytest.raises(ValueError):
        BLOCKS[block](256, 256, BINARY, pool_stride=3)


def test_basic_block():
    module = BLOCKS["basic"](128, 128, BINARY)
    assert _conv_weights(module) == 2 * 128 * 128 * 9
    assert module(torch.randn(2, 128, 8, 8)).shape == (2, 128, 8, 8)
    assert _conv_weights(BLOCKS["basic"](64, 128, BINARY)) == 64 * 128 * 9 + 128 * 128 * 9 + 64 * 128


def test_block_args_reach_every_block():
    model = build_model("hourglass", block="wider", depth=1, features=16, block_args={"mid_ratio": 0.5})
    widers = [m for m in model.modules() if isinstance(m, BLOCKS["wider"])]
    assert widers and all(m.mid == m.body[2].conv.out_channels // 2 for m in widers)


# Whole single hourglass (256 features, depth 4) [computed by hand: 14 blocks 256->256 + the stem's
# blocks 64->128, 128->128, 128->256 + 79,040 for the 7x7 stem, "lin" and heatmap convs].
HOURGLASS = {
    "wider": 11_252_928,  # [computed] 11.25M (printed 11.3M)
    "wider_no1x1": 8_893_632,
    "ms": 3_779_264,
    "ms_no1x1": 9_465_024,
}


@pytest.mark.parametrize("block", sorted(HOURGLASS))
def test_hourglass_totals(block):
    assert _conv_weights(build_model("hourglass", block=block)) == HOURGLASS[block]


# (paper, table, row) -> conv weights of the row's model at paper size.
RUNNABLE_ROWS = {
    ("bulat2017", "2", "wider"): 11_252_928,
    ("bulat2017", "2", "ms"): 3_779_264,
    ("bulat2017", "2", "ms_no1x1"): 9_465_024,
    ("bulat2017", "3", "wider"): 11_252_928,
    ("bulat2017", "3", "wider_no1x1"): 8_893_632,
    ("bulat2017", "5", "wider_real"): 7_003_128,
    ("bulat2019b", "3", "real"): 4_512_352,
}


def _row(paper, table_id, row_id):
    table = get_paper(paper).table(table_id)
    return table, table.row(row_id)


@pytest.mark.parametrize("key", sorted(RUNNABLE_ROWS), ids="-".join)
def test_runnable_row_paper_size_count(key):
    table, row = _row(*key)
    config = resolve(table, row, "paper", 0).config
    assert _conv_weights(PoseTask().build_model(config)) == RUNNABLE_ROWS[key]


def test_wider_reproduces_published_count():
    table, row = _row("bulat2017", "2", "wider")
    assert RUNNABLE_ROWS[("bulat2017", "2", "wider")] / 1e6 == pytest.approx(row.published["params_m"], rel=0.03)
    table, row = _row("bulat2017", "5", "wider_real")
    assert RUNNABLE_ROWS[("bulat2017", "5", "wider_real")] / 1e6 == pytest.approx(row.published["params_m"], rel=0.03)


@pytest.mark.parametrize("key", sorted(RUNNABLE_ROWS), ids="-".join)
def test_runnable_row_smoke_forward(key):
    table, row = _row(*key)
    config = resolve(table, row, "smoke", 0).config
    model = PoseTask().build_model(config)
    size = config["data"]["input_size"]
    outputs = model(torch.randn(2, 3, size, size))
    assert len(outputs) == config["model"]["stacks"]
    assert outputs[-1].shape == (2, 16, size // 4, size // 4) and torch.isfinite(outputs[-1]).all()
