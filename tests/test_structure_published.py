"""Where a paper describes its network completely, the measured #params / FLOPs are within 3% of
the printed ones (issue: the bottleneck, wider and HPM hourglasses, the LBB block counts). The
rows whose description is incomplete report their gap through `compare` and are not here."""
import pytest

from repro.config import resolve
from repro.plugins import get_paper
from repro.train import measure_run

COMPLETE = [
    ("bulat2017", "2", "bottleneck", "params_m"),
    ("bulat2017", "2", "wider", "params_m"),
    ("bulat2017", "2", "hpm", "params_m"),
    ("bulat2017", "5", "wider_real", "params_m"),
    ("bulat2017", "8", "newell_8stack", "params_m"),
    ("bulat2019", "2", "ref4_3stack", "params_m"),
    ("liu2020", "1", "shn", "block_params_m"),
    ("liu2020", "1", "shn", "block_flops_g"),
    ("liu2020", "1", "lbrn_s", "block_params_m"),
]


@pytest.mark.parametrize("paper, table_id, row_id, metric", COMPLETE, ids=["-".join(c) for c in COMPLETE])
def test_complete_descriptions_measure_within_3_percent(paper, table_id, row_id, metric):
    table = get_paper(paper).table(table_id)
    row = table.row(row_id)
    measured = measure_run(resolve(table, row, "structure", 0).config)[metric]
    published = row.published[metric]
    assert abs(measured - published) / published < 0.03, f"{measured:.4f} vs published {published}"
