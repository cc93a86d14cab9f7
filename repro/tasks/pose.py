"""Single-person pose estimation with stacked hourglasses (MPII protocol; synthetic data for proxies)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ReproError
from ..nn import ConvSpec
from ..nn.registry import BLOCKS
from ..nn.structure import measure
from ..paths import cache_dir
from ..pose.augment import augment_batch
from ..pose.heatmaps import decode_heatmaps, flip_heatmaps, render_heatmaps
from ..pose.joints import JOINT_SETS, JointSet
from ..pose.pckh import pckh
from ..pose import synthetic
from .common import build_network, check_name, check_network, data_root

HEATMAP_STRIDE = 4  # stem conv stride 2 + one 2x2 max-pool (Newell)


@dataclass
class PoseSplit:
    images: torch.Tensor  # uint8 [N,3,H,W]
    joints: torch.Tensor  # float [N,J,2], input pixels (J: the joint set's, 16 for MPII)
    visible: torch.Tensor  # bool [N,J]
    head_boxes: torch.Tensor  # float [N,4]

    def __len__(self) -> int:
        return self.images.shape[0]


class PoseTask:
    name = "pose"
    metrics = ("pckh_total", "pckh_head", "pckh_shoulder", "pckh_elbow", "pckh_wrist", "pckh_hip", "pckh_knee", "pckh_ankle")

    # The paper-scale recipe shared by every pose table; papers override what they state.
    defaults = {
        "data": {"name": "mpii", "input_size": 256, "sigma": 1.0, "seed": 0, "n_train": None, "n_val": None,
                 "augment": {"flip": True, "scale": [0.75, 1.25], "rotate": 30.0}},
        "model": {"name": "hourglass", "block": "hpm", "stacks": 1, "depth": 4, "features": 256,
                  "n_joints": 16, "binary_joins": False},
        "conv": {"binary": True, "input_quantizer": "sign", "kernel_quantizer": "xnor_weight",
                 "post_activation": "none", "leaky_slope": 0.01, "prelu_per_channel": False},
        "train": {"epochs": 120, "batch_size": 6, "optimizer": "rmsprop", "lr": 2.5e-4, "weight_decay": 0.0,
                  "lr_drop_every": 40, "lr_drop_factor": 0.1, "loss": "bce",
                  "reverse_init": False, "progressive": None, "distill": None},
        "eval": {"flip_test": True, "pckh_threshold": 0.5},
    }
    # Budgets for the same rows: a few seconds (tests) and a few minutes on 2 cores.
    profiles = {
        "smoke": {"data": {"name": "synthetic_pose", "input_size": 32, "n_train": 48, "n_val": 24},
                  "model": {"features": 16, "depth": 2},
                  "train": {"epochs": 1, "batch_size": 16, "lr_drop_every": 1}},
        "proxy": {"data": {"name": "synthetic_pose", "input_size": 64, "n_train": 1200, "n_val": 500},
                  "model": {"features": 64, "depth": 3},
                  "train": {"epochs": 8, "batch_size": 16, "lr": 1e-3, "lr_drop_every": 6},
                  "eval": {"flip_test": False}},
    }
    assumptions = {
        "conv.leaky_slope": "LeakyReLU slope not given by the papers: PyTorch's default 0.01 (convention)",
        "data.sigma": "heatmap Gaussian sigma 1 heatmap pixel (Newell's pose-hg-train; convention)",
        "train.batch_size": "batch size not given by the papers: 6 as in Newell's pose-hg-train (convention)",
    }
    profile_assumptions = {
        "proxy": {"data.name": "proxy: 1200 synthetic figures at 64x64 (heatmaps 16x16), 64 features, hourglass depth 3, "
                               "batch 16, 8 epochs (lr 1e-3, /10 after epoch 6) per stage, no flip test; judged by the table's claims, not number to number"},
        "smoke": {"data.name": "smoke: a tiny synthetic run that checks the pipeline, not the method"},
    }

    # --- config -------------------------------------------------------------------------------
    def finalize(self, config: dict) -> None:
        """Check names against the registries and derive sizes, before anything is stored."""
        data, model, train = config["data"], config["model"], config["train"]
        multiple = HEATMAP_STRIDE * 2 ** model["depth"]
        if data["input_size"] % multiple:
            raise ReproError(f"data.input_size {data['input_size']} must be a multiple of {multiple} for an hourglass of depth {model['depth']}")
        data["heatmap_size"] = data["input_size"] // HEATMAP_STRIDE
        check_name(model["block"], BLOCKS.names(), "model.block")
        check_network(config)
        check_name(train["loss"], ("bce", "mse"), "train.loss")
        self.check_landmarks(config)
        drops = train.get("lr_drop_at")
        if drops is not None and (not isinstance(drops, list) or not all(isinstance(e, int) and e > 0 for e in drops)
                                  or drops != sorted(set(drops))):
            raise ReproError(f"train.lr_drop_at must be a list of increasing positive epochs, got {drops!r}")
        for key, value in (model.get("size_ratio") or {}).items():
            if key not in ("features", "depth") or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise ReproError(f"model.size_ratio.{key}: expected features or depth with a ratio in (0, 1], got {value!r}")

    def check_landmarks(self, config: dict) -> None:
        check_name(config["data"].get("joints", "mpii"), JOINT_SETS, "data.joints")
        if config["model"]["n_joints"] != len(joint_set(config)):
            raise ReproError(f"model.n_joints is {config['model']['n_joints']}, but the joint set '{joint_set(config).name}' "
                             f"(data.joints) has {len(joint_set(config))} joints")

    # --- data ---------------------------------------------------------------------------------
    def check_data(self, config: dict) -> None:
        name = config["data"]["name"]
        if name == "synthetic_pose":
            return
        if name == "mpii":
            root = data_root() / "mpii"
            if not (root / "images").is_dir() or not (root / "annot").is_dir():
                raise ReproError(
                    f"MPII not found at {root}: download the images and annotations from "
                    f"http://human-pose.mpi-inf.mpg.de and put them in {root}/images and {root}/annot "
                    f"(or set REPRO_DATA_DIR), or use --profile proxy")
            raise ReproError(f"MPII found at {root}, but the MPII loader is not implemented yet: use --profile proxy")
        if name == "lsp":
            root = data_root()
            if not (root / "lsp" / "joints.mat").is_file() or not (root / "lspet" / "joints.mat").is_file():
                raise ReproError(
                    f"LSP / LSPET not found: put LSP (images/, joints.mat) in {root / 'lsp'} and LSPET in "
                    f"{root / 'lspet'} (http://sam.johnson.io/research/lsp.html; or set REPRO_DATA_DIR), "
                    f"or use --profile proxy")
            raise ReproError(f"LSP found at {root / 'lsp'}, but the LSP loader is not implemented yet: use --profile proxy")
        raise ReproError(f"unknown pose dataset '{name}': use synthetic_pose, mpii or lsp")

    synthetic_data = synthetic  # the proxies' data: a module with load_or_generate(n, size, seed, cache)

    def load_data(self, config: dict) -> tuple[PoseSplit, PoseSplit]:
        self.check_data(config)
        data = config["data"]
        size, seed, cache = data["input_size"], data["seed"], cache_dir() / data["name"]
        train = self.synthetic_data.load_or_generate(data["n_train"], size, seed, cache)
        val = self.synthetic_data.load_or_generate(data["n_val"], size, seed + 10_000, cache)  # other samples
        return self.split(train, config), self.split(val, config)

    def split(self, arrays: dict, config: dict) -> PoseSplit:
        keep = list(joint_set(config).from_mpii)  # the generator draws MPII's 16 joints: keep the set's
        return PoseSplit(
            images=torch.from_numpy(arrays["images"]).permute(0, 3, 1, 2).contiguous(),
            joints=torch.from_numpy(arrays["joints"][:, keep]).float(),
            visible=torch.from_numpy(arrays["visible"][:, keep]).bool(),
            head_boxes=torch.from_numpy(arrays["head_boxes"]).float(),
        )

    def batches(self, split: PoseSplit, config: dict, generator: torch.Generator, train: bool = True):
        """Yield (images, targets) batches; training batches are shuffled and augmented."""
        batch_size = config["train"]["batch_size"]
        order = torch.randperm(len(split), generator=generator) if train else torch.arange(len(split))
        aug = config["data"]["augment"]
        for start in range(0, len(split), batch_size):
            idx = order[start:start + batch_size]
            if train and len(idx) < 2:
                continue  # batch norm needs more than one sample
            images = split.images[idx].float() / 255.0
            joints, visible, boxes = split.joints[idx], split.visible[idx], split.head_boxes[idx]
            if train and (aug["flip"] or aug["scale"] or aug["rotate"]):
                images, joints, visible, boxes = augment_batch(
                    images, joints, visible, boxes, generator, flip=aug["flip"],
                    scale=tuple(aug["scale"]) if aug["scale"] else (1.0, 1.0), rotate=aug["rotate"] or 0.0,
                    flip_pairs=self.flip_pairs(config))
            heatmaps = render_heatmaps(joints, visible, config["data"]["heatmap_size"], HEATMAP_STRIDE,
                                       config["data"]["sigma"])
            yield images, {"heatmaps": heatmaps, "joints": joints, "visible": visible, "head_boxes": boxes}

    # --- model, loss, evaluation ----------------------------------------------------------------
    def measure(self, config: dict) -> dict[str, float]:
        """Structure at the configured input size, plus one block (features -> features) at the
        hourglass's top resolution, the unit of liu2020's per-block #Param and FLOPs columns."""
        size, model = config["data"]["input_size"], sized(config["model"])
        metrics = measure(self.build_model(config), (3, size, size))
        conv = ConvSpec(**config["conv"], smooth_kind=(config["train"]["progressive"] or {}).get("kind"))
        block = BLOCKS[model["block"]](model["features"], model["features"], conv, **(model.get("block_args") or {}))
        block_metrics = measure(block, (model["features"], size // HEATMAP_STRIDE, size // HEATMAP_STRIDE))
        metrics.update({f"block_{name}": value for name, value in block_metrics.items() if name in ("params_m", "flops_g", "binary_macs_g")})
        return metrics

    def build_model(self, config: dict) -> torch.nn.Module:
        return build_network(config, sized(config["model"]))

    def loss(self, outputs: list[torch.Tensor], targets: dict, config: dict, soft_targets: torch.Tensor | None = None):
        """Per-pixel loss summed over stacks (intermediate supervision); distillation mixes in soft labels."""
        target = targets["heatmaps"]
        distill = config["train"]["distill"]
        if soft_targets is not None:
            # Bulat 2019 sec. 3.6: ground truth and the teacher's heatmaps combined with one weight.
            target = (1 - distill["weight"]) * target + distill["weight"] * soft_targets
        if config["train"]["loss"] == "bce":
            return sum(F.binary_cross_entropy_with_logits(out, target) for out in outputs)
        return sum(F.mse_loss(out, target) for out in outputs)

    def soft_targets(self, teacher_outputs: list[torch.Tensor]) -> torch.Tensor:
        return torch.sigmoid(teacher_outputs[-1])

    def flip_pairs(self, config: dict) -> tuple[tuple[int, int], ...]:
        return joint_set(config).flip_pairs

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, split: PoseSplit, config: dict) -> torch.Tensor:
        """Joint coordinates [N, J, 2] in input pixels from the last stack (flip-averaged if asked)."""
        model.eval()
        preds = []
        for images, _ in self.batches(split, config, torch.Generator(), train=False):
            heatmaps = model(images)[-1]
            if config["eval"]["flip_test"]:
                flipped = model(torch.flip(images, dims=[3]))[-1]
                heatmaps = (heatmaps + flip_heatmaps(flipped, self.flip_pairs(config))) / 2
            coords, _ = decode_heatmaps(heatmaps, HEATMAP_STRIDE)
            preds.append(coords)
        return torch.cat(preds)

    def evaluate(self, model: torch.nn.Module, split: PoseSplit, config: dict) -> dict[str, float]:
        scores = pckh(self.predict(model, split, config), split.joints, split.visible, split.head_boxes,
                      threshold=config["eval"]["pckh_threshold"], parts=joint_set(config).parts)
        return {f"pckh_{part}": float(value) for part, value in scores.items() if not isinstance(value, dict)}


def joint_set(config: dict) -> JointSet:
    """``data.joints`` (default mpii): the dataset's joints, flip pairs and PCKh parts."""
    return JOINT_SETS[config["data"].get("joints", "mpii")]


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


TASK = PoseTask()
