"""The saliency task: CPD's parts and trunks (torchvision's names), ImageNet weights from a local
file, the datasets' layouts, the synthetic proxy, Table 10 through the CLI (smoke, paper's data
check, structure) and the 9x fewer FLOPs of a replaced 3x3 unit."""
import json
import sqlite3

import pytest
import torch
from torch import nn

from repro.config import resolve
from repro.datasets import check
from repro.errors import ReproError
from repro.nn.structure import measure
from repro.plugins import get_paper
from repro.registry import BLOCKS
from repro.tasks import fixtures, get_task
from repro.tasks.saliency import synthetic
from repro.tasks.saliency.backbones import VGG16, ResNet50, load_backbone_weights
from repro.tasks.saliency.cpd import CPD, HolisticAttention, gaussian_kernel, replace_trunk_3x3
from repro.tasks.saliency.datasets import SOD_DATASETS

TASK = get_task("saliency")
TABLE = get_paper("liu2020").table("10")


def config(row="cpd_vgg16_ecssd", profile="smoke"):
    return resolve(TABLE, TABLE.row(row), profile, 0).config


# --- the network ----------------------------------------------------------------------------------

def test_trunks_use_torchvision_names_and_shapes():
    vgg = VGG16().state_dict()
    assert vgg["features.0.weight"].shape == (64, 3, 3, 3) and vgg["features.28.weight"].shape == (512, 512, 3, 3)
    assert len([k for k in vgg if k.endswith("weight")]) == 13
    resnet = ResNet50().state_dict()
    assert resnet["conv1.weight"].shape == (64, 3, 7, 7) and "bn1.running_mean" in resnet
    assert resnet["layer1.0.conv1.weight"].shape == (64, 64, 1, 1)
    assert resnet["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)
    assert resnet["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert resnet["layer3.0.downsample.0.weight"].shape == (1024, 512, 1, 1)
    # torchvision's resnet50 holds 25.557M parameters, 2.049M of them in fc: the trunk has the rest
    assert sum(p.numel() for p in ResNet50().parameters()) == 25_557_032 - 2048 * 1000 - 1000


def test_cpd_gives_two_maps_at_the_input_size():
    for backbone in ("vgg16", "resnet50"):
        model = CPD(backbone, channel=8, width=0.0625).eval()
        attention, detection = model(torch.randn(2, 3, 64, 64))
        assert attention.shape == detection.shape == (2, 1, 64, 64)


def test_holistic_attention_is_cpd_gkern_and_max_with_the_map():
    kernel = gaussian_kernel(31, 4)
    assert kernel.shape == (31, 31) and kernel.sum().item() == pytest.approx(1.0)
    assert kernel[15, 15] == kernel.max() and torch.allclose(kernel, kernel.T)
    ha = HolisticAttention()
    features = torch.ones(1, 2, 8, 8)
    attention = torch.zeros(1, 1, 8, 8)
    attention[..., 4, 4] = 0.9
    out = ha(attention, features)
    assert out.max().item() == pytest.approx(1.0, abs=1e-4)  # the blurred map is min-max normalized to 1 (+1e-8) at its peak
    assert out[0, 0, 4, 4].item() == pytest.approx(1.0, abs=1e-4) and (out >= 0).all()


def test_lbb_replaces_the_decoder_3x3_units():
    real, lb = (TASK.build_model(config(row)) for row in ("cpd_vgg16_ecssd", "cpd_lb_vgg16_ecssd"))
    lbb = BLOCKS["lbb"]
    assert not any(isinstance(m, lbb) for m in real.modules())
    # per branch: 3 RFBs' concatenation 3x3s + 8 aggregation 3x3s; the trunk is untouched
    assert sum(isinstance(m, lbb) for m in lb.modules()) == 2 * (3 + 8)
    assert not any(isinstance(m, lbb) for part in lb.parts()["backbone"] for m in part.modules())


def test_backbone_scope_replaces_the_trunk_stride_1_3x3s():
    cfg = config("cpd_lb_resnet50_ecssd")
    cfg["model"]["conv3x3_scope"] = "backbone"
    model = TASK.build_model(cfg)
    lbb = BLOCKS["lbb"]
    trunk = [m for part in model.parts()["backbone"] for m in part.modules()]
    # ResNet50: 16 bottlenecks, 3 of them with a strided 3x3 (kept real); shared trunk + two branch copies
    shared = sum(isinstance(m, lbb) for m in model.shared.modules())
    assert shared == 3 + 3  # layer1: 3, layer2: 4 minus its strided first
    assert sum(isinstance(m, lbb) for m in trunk) == shared + 2 * (5 + 2)
    assert not any(isinstance(m, lbb) for part in model.parts()["decoder"] for m in part.modules())
    vgg = VGG16(0.0625)
    assert replace_trunk_3x3(vgg, lambda i, o: nn.Identity()) == 12  # all 13 but the input conv


# --- ImageNet weights from a local file -----------------------------------------------------------

def test_backbone_weights_load_and_are_checked_tensor_by_tensor(tmp_path):
    source = VGG16()
    state = {**source.state_dict(), "classifier.0.weight": torch.zeros(4096, 25088 // 64)}  # extra: ignored
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    target = VGG16()
    load_backbone_weights(target, path, "vgg16")
    assert torch.equal(target.features[28].weight, source.features[28].weight)
    del state["features.10.weight"]
    torch.save(state, path)
    with pytest.raises(ReproError, match=r"tensor 'features.10.weight' of vgg16 is missing"):
        load_backbone_weights(VGG16(), path, "vgg16")
    state["features.10.weight"] = torch.zeros(1, 2, 3, 3)
    torch.save(state, path)
    with pytest.raises(ReproError, match=r"tensor 'features.10.weight' has shape \(1, 2, 3, 3\), vgg16 needs \(256, 128, 3, 3\)"):
        load_backbone_weights(VGG16(), path, "vgg16")


def test_resnet_weights_without_num_batches_tracked_load_into_both_branches(tmp_path):
    source = ResNet50(0.0625)
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "r.pth")
    model = CPD("resnet50", channel=8, width=0.0625,
                load_weights=lambda trunk: load_backbone_weights(trunk, tmp_path / "r.pth", "resnet50"))
    for branch in (model.attention_branch, model.detection_branch):
        assert torch.equal(branch[0][0].conv2.weight, source.layer3[0].conv2.weight)
    assert torch.equal(model.shared[0].weight, source.conv1.weight)


def test_missing_weights_stop_the_paper_profile_with_one_line(workdir, monkeypatch, cli):
    monkeypatch.setenv("REPRO_DATA_DIR", str(workdir / "data"))
    for name in ("duts_tr", "ecssd"):
        fixtures.write_saliency(workdir / "data", name, n=2)
    code, out, err = cli("run", "--paper", "liu2020", "--table", "10", "--rows", "cpd_vgg16_ecssd", "--profile", "paper",
                         "--executor", "debug")
    assert code == 2 and "\n" not in err.strip()
    assert err.startswith("repro: error: vgg16 ImageNet weights not found at ") and "pretrained/vgg16.pth" in err
    assert not (workdir / "results.db").exists() or "finished" not in out


def test_missing_dataset_stops_the_paper_profile_with_one_line(workdir, monkeypatch, cli):
    monkeypatch.setenv("REPRO_DATA_DIR", str(workdir / "data"))
    code, _, err = cli("run", "--paper", "liu2020", "--table", "10", "--rows", "cpd_resnet50_hku_is", "--profile", "paper",
                       "--executor", "debug")
    assert code == 2 and "\n" not in err.strip()
    assert err.startswith("repro: error: duts_tr is not ready: DUTS-TR-Image/: put the images in ")


# --- data -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SOD_DATASETS))
def test_data_check_knows_each_layout(tmp_path, name):
    report = check(name, tmp_path)
    assert not report.usable and SOD_DATASETS[name]["folder"] in str(report.where)
    fixtures.write_saliency(tmp_path, name, n=3)
    report = check(name, tmp_path)
    assert report.usable and report.counts == [("images", 3, SOD_DATASETS[name]["official"])]


def test_the_repackaged_image_mask_layout_is_read_too(tmp_path):
    """<Dataset>/Image + <Dataset>/Mask, as many SOD codebases re-package the benchmarks."""
    fixtures.write_saliency(tmp_path, "hku_is", n=3)
    (tmp_path / "HKU-IS" / "imgs").rename(tmp_path / "HKU-IS" / "Image")
    (tmp_path / "HKU-IS" / "gt").rename(tmp_path / "HKU-IS" / "Mask")
    report = check("hku_is", tmp_path)
    assert report.usable and report.counts == [("images", 3, 4447)] and "HKU-IS/Image" in report.found[0]


def test_unmatched_image_is_reported(tmp_path):
    fixtures.write_saliency(tmp_path, "ecssd", n=3)
    next((tmp_path / "ECSSD" / "ground_truth_mask").iterdir()).unlink()
    report = check("ecssd", tmp_path)
    assert not report.usable and "1 mask(s)" in report.missing[0]


def test_real_layout_reads_and_scores_at_the_mask_size(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA_DIR", str(tmp_path))
    fixtures.write_saliency(tmp_path, "duts_tr", n=4, size=(48, 40))
    masks = fixtures.write_saliency(tmp_path, "pascal_s", n=3, size=(40, 56), seed=1)
    cfg = config("cpd_vgg16_pascal_s", "paper")
    cfg["model"].update(pretrained=False, width=0.0625, channel=8)
    cfg["data"]["input_size"] = 32
    train, val = TASK.load_data(cfg)
    assert len(train) == 4 and len(val) == 3
    images, targets = TASK.batch(train, torch.arange(2), cfg, torch.Generator().manual_seed(0))
    assert images.shape == (2, 3, 32, 32) and targets.shape == (2, 1, 32, 32) and 0 <= targets.min() <= targets.max() <= 1
    _, gts = TASK.batch(val, torch.arange(3), cfg, None, train=False)
    assert [tuple(g.shape) for g in gts] == [(56, 40)] * 3 and torch.equal(gts[0], torch.from_numpy(masks[0]))

    class Constant(nn.Module):  # the same logit everywhere: an 8-bit map of zeros
        def forward(self, x):
            z = torch.zeros(x.shape[0], 1, *x.shape[-2:])
            return z, z

    scores = TASK.evaluate(Constant(), val, cfg)
    # a zero map: MAE = the salient fraction; max F at t = 0 (all predicted): P = mean fraction, R = 1
    fractions = [float((torch.from_numpy(m) > 128).float().mean()) for m in masks]
    p = sum(fractions) / 3
    assert scores["mae"] == pytest.approx(p) and scores["max_f"] == pytest.approx(1.3 * p / (0.3 * p + 1))


def test_synthetic_objects_are_deterministic_with_exact_masks():
    images, masks = synthetic.render(4, 48, seed=3, split="train")
    again, masks_again = synthetic.render(2, 48, seed=3, split="train")
    assert torch.equal(images[:2], again) and torch.equal(masks[:2], masks_again)
    assert images.shape == (4, 3, 48, 48) and set(masks.unique().tolist()) <= {0, 255}
    fraction = (masks > 0).float().mean((1, 2))
    assert ((fraction > 0.02) & (fraction < 0.6)).all()
    other, _ = synthetic.render(1, 48, seed=3, split="val")
    assert not torch.equal(other[0], images[0])


# --- Table 10 through the CLI ---------------------------------------------------------------------

def test_table_10_runs_at_smoke_and_compare_shows_published_beside_reproduced(workdir, cli):
    rows = "cpd_vgg16_ecssd,cpd_lb_resnet50_duts_test"
    code, out, _ = cli("run", "--paper", "liu2020", "--table", "10", "--rows", rows, "--profile", "smoke", "--executor", "debug")
    assert code == 0, out
    con = sqlite3.connect(workdir / "results.db")
    runs = con.execute("select row_id, status from runs where table_id = '10'").fetchall()
    assert sorted(runs) == [("cpd_lb_resnet50_duts_test", "finished"), ("cpd_vgg16_ecssd", "finished")]
    code, out, _ = cli("compare", "--paper", "liu2020", "--table", "10", "--format", "json")
    assert code == 0
    cells = {(c["row"], c["metric"]): c for c in json.loads(out)["cells"]}
    cell = cells[("cpd_vgg16_ecssd", "max_f")]
    assert cell["published"] == 0.936 and cell["profile"] == "smoke" and 0 <= cell["reproduced"] <= 1
    assert cells[("cpd_lb_resnet50_duts_test", "mae")]["published"] == 0.044


def test_structure_measures_9x_fewer_flops_per_replaced_unit():
    real, lb = (TASK.measure(config(row, "structure")) for row in ("cpd_resnet50_ecssd", "cpd_lb_resnet50_ecssd"))
    # one unit, 32 -> 32 channels at 44 x 44 (352 / 8): a 3x3 conv has 9 * 32 * 32 MACs a pixel, the LBB's two
    # real 1x1s 32 * 16 + 16 * 32 = 32 * 32: 9x fewer real FLOPs; its fixed 3x3 (16 -> 16) adds 9 * 16 * 16 additions
    pixels = 44 * 44
    assert real["block_flops_g"] == pytest.approx(2 * 9 * 32 * 32 * pixels / 1e9)
    assert lb["block_flops_g"] == pytest.approx(2 * 32 * 32 * pixels / 1e9)
    assert real["block_flops_g"] / lb["block_flops_g"] == pytest.approx(9.0)
    assert lb["block_binary_macs_g"] == pytest.approx(9 * 16 * 16 * pixels / 1e9)
    assert lb["backbone_flops_g"] == pytest.approx(real["backbone_flops_g"])  # the trunk is kept
    # the decoder keeps its real 1x1 / 1xk / dilated convs: 3.90 -> 1.97 GFLOPs (ResNet50, 352 x 352)
    assert lb["decoder_flops_g"] < 0.6 * real["decoder_flops_g"]
    assert real["backbone_flops_g"] + real["decoder_flops_g"] == pytest.approx(real["flops_g"])


def test_block_unit_of_cpd_is_conv_and_bn():
    unit = measure(BLOCKS["lbb"](32, 32, __import__("repro.nn", fromlist=["ConvSpec"]).ConvSpec(binary=False)), (32, 8, 8))
    assert unit["params_m"] == pytest.approx(2 * 32 * 16 / 1e6)  # the fixed 3x3 weights are not trained


def test_bad_scope_is_one_line():
    row = TABLE.row("cpd_lb_vgg16_ecssd")
    bad = type(row)(**{**row.__dict__, "spec": {**row.spec, "model": {**row.spec["model"], "conv3x3_scope": "heads"}}})
    with pytest.raises(ReproError, match=r"model.conv3x3_scope: unknown value 'heads': choose from all, backbone, decoder"):
        resolve(TABLE, bad, "smoke", 0)


def test_compare_text_shows_table_10_fractions_with_three_decimals(workdir, cli):
    assert cli("run", "--paper", "liu2020", "--table", "10", "--rows", "cpd_lb_vgg16_hku_is", "--profile", "smoke",
               "--executor", "debug")[0] == 0
    code, out, _ = cli("compare", "--paper", "liu2020", "--table", "10")
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("cpd_lb_vgg16_hku_is") and " max_f " in line)
    assert "0.924" in line and "smoke" in line


def test_grad_clip_clamps_each_gradient_element():
    from repro.optim import clip_gradients

    layer = nn.Linear(2, 1, bias=False)
    layer.weight.grad = torch.tensor([[2.0, -0.1]])
    clip_gradients(layer, 0.5)
    assert layer.weight.grad.tolist() == [[0.5, pytest.approx(-0.1)]]
