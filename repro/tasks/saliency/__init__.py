"""Salient object detection: CPD (VGG16 / ResNet50) trained on DUTS-TR, scored on ECSSD, HKU-IS,
PASCAL-S, DUT-OMRON and DUTS-TE by max F-measure and MAE (metrics.py); synthetic objects over
textured clutter for the smoke and proxy profiles (synthetic.py).

A row's ``data.name`` is its test set, ``data.train`` its training set. ``model.conv3x3`` is
``real`` (CPD) or a registered block that replaces CPD's plain 3x3 convs (e.g. a paper's local
binary block, built as ``block(cin, cout, ConvSpec(binary=False), **model.block_args)``);
``model.conv3x3_scope`` says which: ``decoder`` (the RFBs' and aggregations' undilated 3x3s),
``backbone`` (the trunk's stride-1 3x3s but its input conv) or ``all``.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ...data import batches
from ...datasets import require
from ...errors import ReproError
from ...nn import ConvSpec
from ...nn.structure import measure
from ...registry import BLOCKS, OPTIMIZERS, TASKS
from ..common import check_name, data_root
from . import synthetic
from .backbones import BACKBONES, load_backbone_weights, require_weights
from .cpd import CPD, decoder_resolution, real_3x3
from .datasets import TEST_SETS, TRAIN_SETS, ArraySplit, PairSplit, pairs, read_image, read_mask
from .metrics import SaliencyScores, binarize, to_8bit

SYNTHETIC = "synthetic_saliency"
SCOPES = ("decoder", "backbone", "all")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's, as CPD normalizes


@TASKS.register("saliency")
class SaliencyTask:
    name = "saliency"
    metrics = ("max_f", "mae")

    # CPD's recipe (wuzhe71/CPD train.py) as the default; tables override what their papers state.
    defaults = {
        "data": {"name": "duts_test", "train": "duts_tr", "input_size": 352, "n_train": None, "n_val": None, "seed": 0},
        "model": {"name": "cpd", "backbone": "vgg16", "channel": 32, "width": 1.0, "conv3x3": "real",
                  "conv3x3_scope": "decoder", "block_args": {}, "pretrained": True, "backbone_weights": None},
        "conv": {"binary": False},
        "train": {"epochs": 100, "batch_size": 10, "optimizer": "adam", "lr": 1e-4, "weight_decay": 0.0,
                  "lr_drop_every": 50, "lr_drop_factor": 0.1, "lr_drop_at": None, "grad_clip": 0.5, "loss": "bce"},
    }
    _synthetic = {"name": SYNTHETIC, "train": SYNTHETIC}
    profiles = {
        "smoke": {"data": {**_synthetic, "input_size": 64, "n_train": 16, "n_val": 8},
                  "model": {"width": 0.0625, "channel": 8, "pretrained": False},
                  "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3, "lr_drop_every": 1, "lr_drop_at": None}},
        "proxy": {"data": {**_synthetic, "input_size": 64, "n_train": 600, "n_val": 200},
                  "model": {"width": 0.125, "channel": 16, "pretrained": False},
                  "train": {"epochs": 8, "batch_size": 16, "lr": 1e-3, "lr_drop_every": 6, "lr_drop_at": None}},
    }
    assumptions = {
        "data.name": "images resized to data.input_size (bilinear) and ImageNet-normalized, no augmentation (CPD's loader); "
                     "scored as CPD's test script and the SOD toolbox: the detection map upsampled to the mask's size, "
                     "sigmoid, min-max normalized, 8-bit; masks binarized at > 128; MAE per image then averaged; max F "
                     "(beta^2 0.3) over 256 thresholds (>= t) of the dataset-mean precision and recall",
        "model.pretrained": "trunk from torchvision's ImageNet weights (a local file, model.backbone_weights, default "
                            "<data>/pretrained/<backbone>.pth); both branches start from the same deep stages' weights",
        "train.grad_clip": "gradient clipping as CPD's clip_gradient: each gradient element clamped to [-grad_clip, grad_clip]",
    }
    profile_assumptions = {
        "proxy": {"data.name": "proxy: 600 synthetic salient objects over textured clutter at 64x64 (200 for validation, "
                               "one test set for every row's dataset); networks at 1/8 width, decoder channel 16; Adam lr 1e-3, "
                               "batch 16, 8 epochs, lr / 10 after epoch 6; judged by the claims, not number to number",
                  "model.pretrained": "proxy: trunk trained from scratch (no ImageNet weights at 1/8 width)"},
        "smoke": {"data.name": "smoke: a tiny synthetic run that checks the pipeline, not the method",
                  "model.pretrained": "smoke: trunk trained from scratch (no ImageNet weights)"},
    }

    # --- config -------------------------------------------------------------------------------
    def finalize(self, config: dict) -> None:
        data, model, train = config["data"], config["model"], config["train"]
        check_name(data["name"], (*TEST_SETS, SYNTHETIC), "data.name")
        check_name(data["train"], (*TRAIN_SETS, SYNTHETIC), "data.train")
        if (data["name"] == SYNTHETIC) != (data["train"] == SYNTHETIC):
            raise ReproError(f"data.name '{data['name']}' and data.train '{data['train']}': the synthetic data is both "
                             f"or neither")
        if data["name"] == SYNTHETIC and (not data["n_train"] or not data["n_val"]):
            raise ReproError("the synthetic saliency data is rendered on demand: set data.n_train and data.n_val")
        check_name(model["name"], ("cpd",), "model.name")
        check_name(model["backbone"], BACKBONES, "model.backbone")
        check_name(model["conv3x3"], ("real", *BLOCKS.names()), "model.conv3x3")
        check_name(model["conv3x3_scope"], SCOPES, "model.conv3x3_scope")
        stride = 32 if model["backbone"] == "resnet50" else 16
        if data["input_size"] % stride:
            raise ReproError(f"data.input_size {data['input_size']}: {model['backbone']} needs a multiple of {stride}")
        if model["pretrained"] and model["width"] != 1.0:
            raise ReproError(f"model.width {model['width']}: ImageNet weights fit only the full-width trunk "
                             f"(set model.pretrained: false)")
        if config["conv"].get("binary"):
            raise ReproError("conv.binary: CPD is real-valued; a binary 3x3 replacement is a block (model.conv3x3)")
        check_name(train["optimizer"], OPTIMIZERS.names(), "train.optimizer")
        check_name(train["loss"], ("bce",), "train.loss")
        if train.get("grad_clip") is not None and train["grad_clip"] <= 0:
            raise ReproError(f"train.grad_clip must be positive (or null: no clipping), got {train['grad_clip']}")
        try:  # a block's own options, before anything is stored (its random draws leave no trace)
            with torch.random.fork_rng():
                self._make_3x3(config)(2 * model["channel"], 2 * model["channel"])
        except (TypeError, ValueError) as exc:
            raise ReproError(f"model.block_args for '{model['conv3x3']}': {exc}") from None

    # --- data ---------------------------------------------------------------------------------
    def weights_path(self, config: dict) -> Path:
        model = config["model"]
        return Path(model["backbone_weights"]) if model["backbone_weights"] else data_root() / "pretrained" / f"{model['backbone']}.pth"

    def check_data(self, config: dict) -> None:
        data = config["data"]
        if data["name"] == SYNTHETIC:
            return
        require(data["train"])
        require(data["name"])
        if config["model"]["pretrained"]:
            require_weights(self.weights_path(config), config["model"]["backbone"])

    def load_data(self, config: dict):
        self.check_data(config)
        data = config["data"]
        if data["name"] == SYNTHETIC:
            size = data["input_size"]
            return (ArraySplit(*synthetic.render(data["n_train"], size, data["seed"], "train")),
                    ArraySplit(*synthetic.render(data["n_val"], size, data["seed"], "val")))
        root = data_root()
        return (_subset(pairs(data["train"], root), data["n_train"], data["seed"]),
                _subset(pairs(data["name"], root), data["n_val"], data["seed"] + 1))

    def batch(self, split, idx: torch.Tensor, config: dict, generator: torch.Generator | None,
              train: bool = True) -> tuple[torch.Tensor, torch.Tensor | list[torch.Tensor]]:
        """(normalized images [B, 3, S, S], targets): for training the masks at the input size in
        [0, 1] ([B, 1, S, S], resized bilinearly as CPD's loader); for evaluation the uint8 masks
        at their own size (a list), which the maps are upsampled to."""
        size = config["data"]["input_size"]
        if isinstance(split, PairSplit):
            rows = idx.tolist()
            images = torch.stack([read_image(split.images[i], size) for i in rows])
            masks = ([read_mask(split.masks[i], size) for i in rows] if train else [read_mask(split.masks[i]) for i in rows])
        else:
            images = split.images[idx]
            masks = list(split.masks[idx])
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (MEAN, STD))
        images = (images.float() / 255.0 - mean) / std
        if train:
            return images, torch.stack(masks).float().div(255.0).unsqueeze(1)
        return images, masks

    # --- model, loss, evaluation ----------------------------------------------------------------
    def _make_3x3(self, config: dict):
        model = config["model"]
        if model["conv3x3"] == "real":
            return real_3x3
        block, options, spec = BLOCKS[model["conv3x3"]], dict(model.get("block_args") or {}), ConvSpec(binary=False)
        return lambda cin, cout: block(cin, cout, spec, **options)

    def build_model(self, config: dict, load_weights: bool = True) -> torch.nn.Module:
        model = config["model"]
        replacement = self._make_3x3(config)
        scope = model["conv3x3_scope"] if model["conv3x3"] != "real" else "decoder"
        weights = None
        if load_weights and model["pretrained"]:
            path, backbone = self.weights_path(config), model["backbone"]
            weights = lambda trunk: load_backbone_weights(trunk, path, backbone)  # noqa: E731
        return CPD(model["backbone"], model["channel"], model["width"],
                   make_3x3=replacement if scope in ("decoder", "all") else real_3x3,
                   trunk_3x3=replacement if scope in ("backbone", "all") else None,
                   load_weights=weights)

    def measure(self, config: dict) -> dict[str, float]:
        """The network at the input size (with its trunk / decoder split), and one 3x3 unit
        (channel -> channel: CPD's conv + BN, or the replacing block) at the decoder's finest
        resolution: ``block_*``, the unit of the "9x fewer FLOPs per basic conv block" claim."""
        size, model = config["data"]["input_size"], config["model"]
        network = self.build_model(config, load_weights=False)
        metrics = measure(network, (3, size, size), parts=network.parts())
        side, channel = decoder_resolution(model["backbone"], size), model["channel"]
        block = measure(self._make_3x3(config)(channel, channel), (channel, side, side))
        metrics.update({f"block_{name}": block[name] for name in ("params_m", "flops_g", "binary_macs_g")})
        return metrics

    def loss(self, outputs: tuple[torch.Tensor, torch.Tensor], masks: torch.Tensor, config: dict) -> torch.Tensor:
        """CPD's: binary cross-entropy on the attention and the detection maps, summed."""
        return sum(F.binary_cross_entropy_with_logits(out, masks) for out in outputs)

    def distill_targets(self, teacher_outputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return torch.sigmoid(teacher_outputs[1])

    def distill_loss(self, outputs, soft_targets: torch.Tensor, config: dict) -> torch.Tensor:
        return self.loss(outputs, soft_targets, config)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, split, config: dict) -> dict[str, float]:
        """max F-measure and MAE over the split (metrics.py's conventions)."""
        model.eval()
        scores = SaliencyScores()
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        for images, masks in batches(self, split, config, train=False):
            _, detection = model(images.to(device, non_blocking=True))
            for logits, mask in zip(detection, masks):
                logits = F.interpolate(logits[None], size=tuple(mask.shape), mode="bilinear", align_corners=False)[0, 0]
                scores.add(to_8bit(torch.sigmoid(logits).cpu()), binarize(mask))
        return scores.result()


def _subset(split: PairSplit, n: int | None, seed: int) -> PairSplit:
    """A seeded random subset of ``n`` pairs (None or n >= len: all)."""
    if n is None or n >= len(split):
        return split
    keep = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n].sort().values.tolist()
    return PairSplit([split.images[i] for i in keep], [split.masks[i] for i in keep])
