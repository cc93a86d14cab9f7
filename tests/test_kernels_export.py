"""Export -> packed file -> run on the kernels == the PyTorch binary model; the kernels CLI."""
import json
import sqlite3

import pytest
import torch

from repro.cli import main
from repro.export import find_run, load_packed, load_trained


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Smoke-trained binary rows (no non-linearity, and PReLU) of bulat2019 Table 1."""
    folder = tmp_path_factory.mktemp("kernels_smoke")
    mp = pytest.MonkeyPatch()
    mp.chdir(folder)
    for var in ("REPRO_DB", "REPRO_HOME", "MLFLOW_TRACKING_URI"):
        mp.delenv(var, raising=False)
    code = main(["run", "--paper", "bulat2019", "--table", "1", "--rows", "baseline,prelu",
                 "--profile", "smoke", "--executor", "debug"])
    assert code == 0
    yield folder
    mp.undo()



@pytest.mark.parametrize("row", ["baseline", "prelu"])
def test_export_then_packed_run_gives_the_same_heatmaps(smoke_runs, cli, monkeypatch, row):
    monkeypatch.chdir(smoke_runs)
    code, out, err = cli("export", "--paper", "bulat2019", "--table", "1", "--row", row, "--profile", "smoke")
    assert code == 0, err
    assert "packed" in out and "smaller" in out
    path = smoke_runs / ".repro" / "packed" / f"bulat2019-1-{row}-smoke-s0.pt"
    config, packed = load_packed(path)
    _, model = load_trained(find_run("bulat2019", "1", row, "smoke", 0, None))
    blob = torch.load(path, weights_only=True)
    assert blob["packed_units"] > 0
    units = [k[: -len(".weight_bits")] for k in blob["state"] if k.endswith(".weight_bits")]
    assert len(units) == blob["packed_units"]
    assert all(blob["state"][f"{u}.weight_bits"].dtype == torch.int64 and f"{u}.conv.weight" not in blob["state"]
               for u in units)  # 1-bit words only, no float copy of the binary weights
    size = config["data"]["input_size"]
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = model(x), packed(x)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)
    # Heatmap peaks (what the pose decoder reads) are the same.
    assert torch.equal(expected[-1].flatten(2).argmax(-1), got[-1].flatten(2).argmax(-1))


def test_export_errors_are_one_line(smoke_runs, cli, monkeypatch):
    monkeypatch.chdir(smoke_runs)
    code, _, err = cli("export", "--paper", "bulat2019", "--table", "1", "--row", "lrelu", "--profile", "smoke")
    assert code == 2 and err.startswith("repro: error: no finished run") and err.count("\n") == 1
    code, _, err = cli("export", "--paper", "bulat2019", "--table", "1", "--row", "nope")
    assert code == 2 and "unknown row 'nope'" in err


def test_bench_model_and_show(smoke_runs, cli, monkeypatch):
    monkeypatch.chdir(smoke_runs)
    code, out, err = cli("kernels", "bench-model", "--paper", "bulat2019", "--table", "1", "--row", "prelu",
                         "--profile", "smoke", "--pairs", "1", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["baseline"] for r in rows] == ["float32 model (same architecture)", "float32 model, channels_last",
                                             "bfloat16 model, channels_last", "PyTorch binary model (float convs)"]
    assert all(r["ratio"] > 0 and r["packed_weight_bytes"] < r["float_weight_bytes"] for r in rows)
    assert rows[0]["extra"]["max_abs_diff_vs_pytorch_binary"] < 1e-3
    for r in rows:  # peak memory of a forward pass at batch 1 and 16 (Linux here), batch 16 the larger
        for side in ("peak_rss_mb_packed", "peak_rss_mb_baseline"):
            assert set(r["extra"][side]) == {"1", "16"} and 0 <= r["extra"][side]["1"] <= r["extra"][side]["16"]
    code, out, _ = cli("kernels", "bench-model", "--paper", "bulat2019", "--table", "1", "--row", "prelu",
                       "--profile", "smoke", "--pairs", "1", "--db", "sqlite:///text.db")
    assert code == 0 and "the fastest float form here:" in out and "peak memory of a forward pass batch 1:" in out
    code, out, _ = cli("kernels", "bench", "--only", "@4", "--pairs", "1", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 15 and all({"m", "k", "n", "baseline", "ratio", "threads", "device"} <= set(r) for r in rows)
    assert all(r["shape"]["size"] == 4 and r["memory_ratio"] == 32.0 and r["extra"]["kernel_only_ratio"] > 0 for r in rows)
    baselines = {r["baseline"] for r in rows}  # 3 convs, 5 baselines each
    assert {b for b in baselines if not b.startswith("int8")} == {
        "F.conv2d fp32", "F.conv2d fp32 channels_last", "F.conv2d bf16", "F.conv2d bf16 channels_last"}
    assert [b for b in baselines if b.startswith("int8")] == [f"int8 quantized conv (+-1, {torch.backends.quantized.engine})"]
    if rows[0]["backend"] != "torch":  # the ceiling is measured on this core, each path against its fp32 FMA
        assert rows[0]["ceiling_ratio"] > 1 and rows[0]["backend"] in rows[0]["extra"]["peak_gmacs"]
    con = sqlite3.connect(smoke_runs / "results.db")
    assert con.execute("select count(*) from kernel_benchmarks").fetchone()[0] == 19
    code, out, _ = cli("kernels", "show")
    assert code == 0 and "hpm 256->128 @4" in out and "58x faster convolutions" in out and "packed model" in out


@pytest.mark.parametrize("argv, message", [
    pytest.param(["kernels", "bench", "--device", "cuda"], "--device cuda",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the command runs")),
    (["kernels", "bench", "--threads", "0"], "--threads must be at least 1"),
    (["kernels", "bench", "--only", "no such shape"], "no benchmark shape matches"),
    (["kernels", "bench-model", "--paper", "bulat2019", "--table", "1", "--row", "real", "--profile", "smoke"], "real-valued"),
])
def test_kernels_cli_bad_input(workdir, cli, argv, message):
    code, _, err = cli(*argv)
    assert code == 2 and err.startswith("repro: error:") and message in err and err.count("\n") == 1
