"""Keypoint localization with stacked hourglasses and Gaussian heatmaps: what human pose
estimation and face alignment share (network, heatmaps, augmentation, loss, flip test,
structure). A subclass names its keypoints, their flip pairs, its data and its metric.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType

import torch
import torch.nn.functional as F

from ...data import batches
from ...errors import ReproError
from ...nn.structure import measure
from ...paths import cache_dir
from ...registry import BLOCKS
from ..common import build_network, check_name, check_network, conv_spec
from .augment import augment_batch
from .files import KeypointFiles
from .heatmaps import decode_heatmaps, flip_heatmaps, render_heatmaps

HEATMAP_STRIDE = 4  # stem conv stride 2 + one 2x2 max-pool (Newell)


def profile_assumptions(data: str) -> dict[str, dict[str, str]]:
    """What the smoke and proxy overlays below change, with the proxy's ``data`` described."""
    return {
        "proxy": {"data.name": f"proxy: {data} at 64x64 (heatmaps 16x16), 64 features, hourglass depth 3, batch 16, "
                               "8 epochs (lr 1e-3, /10 after epoch 6), no flip test; judged by the table's claims, "
                               "not number to number",
                  # in place of the paper's assumption, where a row uses reverse-order initialization
                  "train.reverse_init": "proxy: reverse-order initialization's two stages share the 8 epochs (4 + 4, "
                                        "the lr schedule compressed to each), so that every row trains 8 epochs in all"},
        "smoke": {"data.name": "smoke: a tiny synthetic run that checks the pipeline, not the method"},
    }


@dataclass
class KeypointSplit:
    images: torch.Tensor  # uint8 [N, 3, H, W]
    keypoints: torch.Tensor  # float [N, K, 2], input pixels
    visible: torch.Tensor  # bool [N, K]
    boxes: torch.Tensor  # float [N, 4] (x1, y1, x2, y2): the box the metric normalizes by

    def __len__(self) -> int:
        return self.images.shape[0]


class HeatmapTask:
    """The shared half of the pose and face tasks. Subclasses set ``name``, ``metrics``,
    ``synthetic_data`` (a module with ``load_or_generate(n, size, seed, cache)``) and implement
    ``n_keypoints``, ``flip_pairs``, ``check_keypoints``, ``check_data``, ``split``, ``evaluate``."""

    synthetic_data: ModuleType

    # The paper-scale recipe shared by the hourglass tables (Newell's); papers override what they state.
    defaults = {
        "data": {"input_size": 256, "sigma": 1.0, "seed": 0, "n_train": None, "n_val": None,
                 "augment": {"flip": True, "scale": [0.75, 1.25], "rotate": 30.0}},
        "model": {"name": "hourglass", "block": "bottleneck", "stacks": 1, "depth": 4, "features": 256,
                  "binary_joins": False},
        "conv": {"binary": True, "input_quantizer": "sign", "kernel_quantizer": "xnor_weight",
                 "post_activation": "none", "leaky_slope": 0.01, "prelu_per_channel": False},
        "train": {"epochs": 120, "batch_size": 6, "optimizer": "rmsprop", "lr": 2.5e-4, "weight_decay": 0.0,
                  "lr_drop_every": 40, "lr_drop_factor": 0.1, "loss": "bce", "stage_epochs": None},
        "eval": {"flip_test": True},
    }
    # Budgets for the same rows: a few seconds (tests) and a few minutes on 2 cores.
    profiles = {
        "smoke": {"data": {"input_size": 32, "n_train": 48, "n_val": 24},
                  "model": {"features": 16, "depth": 2},
                  "train": {"epochs": 1, "batch_size": 16, "lr_drop_every": 1}},
        "proxy": {"data": {"input_size": 64, "n_train": 1000, "n_val": 500},
                  "model": {"features": 64, "depth": 3},
                  "train": {"epochs": 8, "batch_size": 16, "lr": 1e-3, "lr_drop_every": 6, "stage_epochs": 4},
                  "eval": {"flip_test": False}},
    }
    assumptions = {
        "conv.leaky_slope": "LeakyReLU slope not given by the papers: PyTorch's default 0.01 (convention)",
        "data.sigma": "heatmap Gaussian sigma 1 heatmap pixel (Newell's pose-hg-train; convention)",
        "train.batch_size": "batch size not given by the papers: 6 as in Newell's pose-hg-train (convention)",
    }

    # --- what a subclass says about its keypoints ------------------------------------------
    def n_keypoints(self, config: dict) -> int:
        raise NotImplementedError

    def flip_pairs(self, config: dict) -> tuple[tuple[int, int], ...]:
        raise NotImplementedError

    def check_keypoints(self, config: dict) -> None:
        """Task-specific config checks (keypoint set, metric options)."""

    def split(self, arrays: dict, config: dict) -> KeypointSplit:
        raise NotImplementedError

    # --- config -------------------------------------------------------------------------------
    def finalize(self, config: dict) -> None:
        """Check names against the registries and derive sizes, before anything is stored."""
        data, model, train = config["data"], config["model"], config["train"]
        multiple = HEATMAP_STRIDE * 2 ** model["depth"]
        if data["input_size"] % multiple:
            raise ReproError(f"data.input_size {data['input_size']} must be a multiple of {multiple} "
                             f"for an hourglass of depth {model['depth']}")
        data["heatmap_size"] = data["input_size"] // HEATMAP_STRIDE
        check_name(model["block"], BLOCKS.names(), "model.block")
        check_network(config)
        check_name(train["loss"], ("bce", "mse"), "train.loss")
        self.check_keypoints(config)
        expected = self.n_keypoints(config)
        if model.setdefault("n_keypoints", expected) != expected:
            raise ReproError(f"model.n_keypoints is {model['n_keypoints']}, but the data have {expected} keypoints")
        for key, value in (model.get("size_ratio") or {}).items():
            if key not in ("features", "depth") or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise ReproError(f"model.size_ratio.{key}: expected features or depth with a ratio in (0, 1], got {value!r}")

    # --- data ---------------------------------------------------------------------------------
    def read_files(self, config: dict) -> tuple[KeypointFiles, KeypointFiles] | None:
        """(train, validation) of a real dataset read from its files; None for the synthetic one."""
        return None

    def load_data(self, config: dict) -> tuple[KeypointSplit | KeypointFiles, KeypointSplit | KeypointFiles]:
        self.check_data(config)
        data = config["data"]
        files = self.read_files(config)
        if files is not None:
            train, val = files
            return _subset(train, data["n_train"], data["seed"]), _subset(val, data["n_val"], data["seed"] + 1)
        size, seed, cache = data["input_size"], data["seed"], cache_dir() / data["name"]
        train = self.synthetic_data.load_or_generate(data["n_train"], size, seed, cache)
        val = self.synthetic_data.load_or_generate(data["n_val"], size, seed + 10_000, cache)  # other samples
        return self.split(train, config), self.split(val, config)

    def batch(self, split: KeypointSplit, idx: torch.Tensor, config: dict, generator: torch.Generator | None,
              train: bool = True) -> tuple[torch.Tensor, dict]:
        """(images, targets) of the examples ``idx``; a training batch augmented by ``generator``."""
        aug = config["data"]["augment"]
        if isinstance(split, KeypointFiles):  # decoded, cropped and augmented per image (in a DataLoader worker)
            images, keypoints, visible, boxes = split.batch(idx, config["data"]["input_size"], generator if train else None,
                                                            aug, self.flip_pairs(config))
        else:
            images = split.images[idx].float() / 255.0
            keypoints, visible, boxes = split.keypoints[idx], split.visible[idx], split.boxes[idx]
            if train and (aug["flip"] or aug["scale"] or aug["rotate"]):
                images, keypoints, visible, boxes = augment_batch(
                    images, keypoints, visible, boxes, generator, flip=aug["flip"],
                    scale=tuple(aug["scale"]) if aug["scale"] else (1.0, 1.0), rotate=aug["rotate"] or 0.0,
                    flip_pairs=self.flip_pairs(config))
        if train and aug.get("color_noise"):
            images = colour_noise(images, generator)
        heatmaps = render_heatmaps(keypoints, visible, config["data"]["heatmap_size"], HEATMAP_STRIDE, config["data"]["sigma"])
        return images, {"heatmaps": heatmaps, "keypoints": keypoints, "visible": visible, "boxes": boxes}

    # --- model, loss, evaluation ----------------------------------------------------------------
    def build_model(self, config: dict) -> torch.nn.Module:
        return build_network(config, sized(config["model"]))

    def measure(self, config: dict) -> dict[str, float]:
        """Structure at the configured input size, plus one block (features -> features) at the
        hourglass's top resolution, the unit of liu2020's per-block #Param and FLOPs columns."""
        size, model = config["data"]["input_size"], sized(config["model"])
        metrics = measure(self.build_model(config), (3, size, size))
        block = BLOCKS[model["block"]](model["features"], model["features"], conv_spec(config), **(model.get("block_args") or {}))
        block_metrics = measure(block, (model["features"], size // HEATMAP_STRIDE, size // HEATMAP_STRIDE))
        metrics.update({f"block_{name}": block_metrics[name] for name in ("params_m", "flops_g", "binary_macs_g")})
        return metrics

    def loss(self, outputs: list[torch.Tensor], targets: dict, config: dict) -> torch.Tensor:
        """Per-pixel loss summed over stacks (intermediate supervision)."""
        return self._heatmap_loss(outputs, targets["heatmaps"], config)

    def distill_targets(self, teacher_outputs: list[torch.Tensor]) -> torch.Tensor:
        return torch.sigmoid(teacher_outputs[-1])

    def distill_loss(self, outputs: list[torch.Tensor], soft_targets: torch.Tensor, config: dict) -> torch.Tensor:
        """The same per-pixel loss against the teacher's heatmaps (Bulat 2019 sec. 3.6)."""
        return self._heatmap_loss(outputs, soft_targets, config)

    @staticmethod
    def _heatmap_loss(outputs: list[torch.Tensor], target: torch.Tensor, config: dict) -> torch.Tensor:
        if config["train"]["loss"] == "bce":
            return sum(F.binary_cross_entropy_with_logits(out, target) for out in outputs)
        return sum(F.mse_loss(out, target) for out in outputs)

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, split: KeypointSplit, config: dict) -> torch.Tensor:
        """Keypoint coordinates [N, K, 2] in input pixels from the last stack (flip-averaged if asked)."""
        model.eval()
        preds = []
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        for images, _ in batches(self, split, config, train=False):
            images = images.to(device, non_blocking=True)
            heatmaps = model(images)[-1]
            if config["eval"]["flip_test"]:
                flipped = model(torch.flip(images, dims=[3]))[-1]
                heatmaps = (heatmaps + flip_heatmaps(flipped, self.flip_pairs(config))) / 2
            coords, _ = decode_heatmaps(heatmaps, HEATMAP_STRIDE)
            preds.append(coords.cpu())
        return torch.cat(preds)


def colour_noise(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each channel of each image scaled by a factor drawn from U(0.8, 1.2), clipped to [0, 1]
    (Newell's pose-hg-train colour augmentation)."""
    factors = 0.8 + 0.4 * torch.rand(images.shape[0], images.shape[1], 1, 1, generator=generator)
    return (images * factors).clamp_(0.0, 1.0)


def _subset(split: KeypointFiles, n: int | None, seed: int) -> KeypointFiles:
    """A seeded random subset of ``n`` examples (None or n >= len: the whole split)."""
    if n is None or n >= len(split):
        return split
    return split.take(torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n].sort().values)


def sized(model: dict) -> dict:
    """The model options with ``size_ratio`` applied: ``{features: r, depth: r}`` scale the
    (profile's) width and hourglass depth, so a row that is a smaller network than its table's
    stays smaller at smoke / proxy sizes (features rounded to a multiple of 4, depth >= 1)."""
    model = dict(model)
    ratio = model.pop("size_ratio", None) or {}
    if "features" in ratio:
        model["features"] = max(4, 4 * math.floor(model["features"] * ratio["features"] / 4 + 0.5))
    if "depth" in ratio:
        model["depth"] = max(1, math.floor(model["depth"] * ratio["depth"] + 0.5))
    return model

