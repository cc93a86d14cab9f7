"""Image classification: ImageNet (image folders), CIFAR-10/100 (pickles); scikit-learn's digits
rendered as colour images for the smoke and proxy profiles. Scores top-1 / top-5 accuracy and error.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...data import batches
from ...datasets import require
from ...errors import ReproError
from ...nn.structure import measure
from ...registry import BLOCKS, MODELS, TASKS
from ..common import build_network, check_name, check_network, data_root
from . import digits
from .datasets import ArraySplit, FolderSplit, decode, folder_classes, load_cifar, load_folder

# Dataset name -> kind, number of classes (None: must be given as data.classes), native image size.
DATASETS = {
    "imagenet": {"kind": "folder", "classes": 1000, "size": None},
    "imagenet_subset": {"kind": "folder", "classes": None, "size": None},
    "cifar10": {"kind": "cifar", "classes": 10, "size": 32},
    "cifar100": {"kind": "cifar", "classes": 100, "size": 32},
    "digits": {"kind": "digits", "classes": digits.N_CLASSES, "size": None},
}
# Per-channel normalization (RGB mean, std): the usual ImageNet and CIFAR-10 statistics.
NORMALIZE = {"folder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
             "cifar": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
             "digits": ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))}
TOPK = (1, 5)
DATASETS_CHECKED = ("cifar10", "cifar100", "imagenet")  # `repro data check` knows their official counts


@TASKS.register("classification")
class ClassificationTask:
    name = "classification"
    metrics = ("top1_acc", "top5_acc", "top1_err", "top5_err")

    # He et al.'s ImageNet ResNet recipe as the default; tables override what their papers state.
    defaults = {
        "data": {"name": "imagenet", "resize": 256, "crop": 224, "classes": None, "seed": 0,
                 "n_train": None, "n_val": None,
                 "augment": {"random_crop": True, "flip": True, "pad_crop": 0}},
        "model": {"name": "resnet18", "width": 1.0, "first_last_real": True},
        "conv": {"binary": True, "input_quantizer": "sign", "kernel_quantizer": "xnor_weight",
                 "post_activation": "none", "leaky_slope": 0.01, "prelu_per_channel": False},
        "train": {"epochs": 90, "batch_size": 256, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
                  "weight_decay": 1e-4, "lr_drop_every": 30, "lr_drop_factor": 0.1, "loss": "cross_entropy",
                  "stage_epochs": None},
        "eval": {"center_crop": None},  # None: the training crop size
    }
    # The same rows on the digits proxy: seconds (tests) and minutes a row on 2 cores.
    _proxy_data = {"name": "digits", "resize": None, "classes": None, "n_val": 1000,
                   "augment": {"random_crop": False, "flip": False, "pad_crop": 2}}
    profiles = {
        "smoke": {"data": {**_proxy_data, "crop": 32, "n_train": 64, "n_val": 32},
                  "model": {"width": 0.125},
                  "train": {"epochs": 1, "batch_size": 16, "lr_drop_every": 1, "lr_drop_at": None},
                  "eval": {"center_crop": None}},
        "proxy": {"data": {**_proxy_data, "crop": 32, "n_train": 3000},
                  "model": {"width": 0.25},
                  "train": {"epochs": 6, "batch_size": 32, "lr_drop_every": 4, "lr_drop_at": None, "stage_epochs": 3},
                  "eval": {"center_crop": None}},
    }
    assumptions = {
        "conv.leaky_slope": "LeakyReLU slope not given by the papers: PyTorch's default 0.01 (convention)",
        "model.name": "real networks are pre-activation ResNets / AlexNet with batch norm (BN -> ReLU -> conv units, no dropout); "
                      "binary ones keep the first conv, the last fc and the downsampling shortcuts real (XNOR-Net convention)",
        "train.distill.weight": "classification distillation: cross-entropy against the teacher's softmax (temperature 1, "
                                "convention), mixed with the ground-truth cross-entropy by the weight",
    }
    profile_assumptions = {
        "proxy": {"data.name": "proxy: 3000 colour renderings of scikit-learn's 8x8 digits (10 classes; validation on 1000 "
                               "renderings of 400 held-out digits) at 32x32 (tables may set another size), 2-px pad-and-crop, "
                               "no flip; networks at 1/4 width; batch 32, 6 epochs, lr / 10 after epoch 4; judged by the claims, "
                               "not number to number",
                  "train.reverse_init": "proxy: reverse-order initialization's two stages share the 6 epochs (3 + 3, the lr "
                                        "schedule compressed to each), so that every row trains 6 epochs in all"},
        "smoke": {"data.name": "smoke: a tiny digits run that checks the pipeline, not the method"},
    }

    # --- config -------------------------------------------------------------------------------
    def finalize(self, config: dict) -> None:
        """Check names and sizes, derive the input size and the class count, before anything is stored."""
        data, model, train, evaluation = config["data"], config["model"], config["train"], config["eval"]
        check_name(data["name"], DATASETS, "data.name")
        dataset = DATASETS[data["name"]]
        classes = data["classes"] or dataset["classes"]
        if classes is None:
            raise ReproError(f"data.classes: the number of classes of '{data['name']}' must be given")
        data["classes"] = model["n_classes"] = classes
        if dataset["size"] is not None:  # fixed-size images: no resize, the crop is the image
            if data["resize"] is not None or data["crop"] != dataset["size"] or data["augment"]["random_crop"]:
                raise ReproError(f"{data['name']} images are {dataset['size']}x{dataset['size']}: set data.resize: null, "
                                 f"data.crop: {dataset['size']}, data.augment.random_crop: false (use pad_crop)")
        elif dataset["kind"] == "digits":
            if data["resize"] is not None or data["augment"]["random_crop"]:
                raise ReproError("digits are rendered at data.crop: set data.resize: null and data.augment.random_crop: false")
            if not data["n_train"] or not data["n_val"]:
                raise ReproError("digits are rendered on demand: set data.n_train and data.n_val")
        if evaluation["center_crop"] is not None and evaluation["center_crop"] != data["crop"]:
            raise ReproError(f"eval.center_crop {evaluation['center_crop']} differs from data.crop {data['crop']}: "
                             f"the network is evaluated at its training size")
        data["input_size"] = data["crop"]
        check_name(model["name"], MODELS.names(), "model.name")
        if not model.get("first_last_real", True):
            raise ReproError("model.first_last_real: false is not supported: the first conv and the last fc stay real")
        if "block" in model:
            check_name(model["block"], BLOCKS.names(), "model.block")
        check_network(config)
        check_name(train["loss"], ("cross_entropy",), "train.loss")

    # --- data ---------------------------------------------------------------------------------
    def check_data(self, config: dict) -> None:
        name = config["data"]["name"]
        kind = DATASETS[name]["kind"]
        root = data_root()
        if kind == "digits":
            try:
                import sklearn.datasets  # noqa: F401
            except ImportError:
                raise ReproError("the digits proxy needs scikit-learn: pip install scikit-learn") from None
        elif name in DATASETS_CHECKED:
            require(name)
        else:
            train_classes = folder_classes(root / name / "train")
            if not train_classes or not (root / name / "val").is_dir():
                raise ReproError(f"{name} not found at {root / name}: put the images in {root / name}/train/<class>/ "
                                 f"and {root / name}/val/<class>/ (one folder per class, validation images sorted "
                                 f"into class folders too; or set REPRO_DATA_DIR), or use --profile proxy")
            if len(train_classes) != config["data"]["classes"]:
                raise ReproError(f"{root / name}/train has {len(train_classes)} class folders, "
                                 f"data.classes says {config['data']['classes']}")

    def load_data(self, config: dict):
        self.check_data(config)
        data = config["data"]
        kind = DATASETS[data["name"]]["kind"]
        if kind == "digits":
            train = ArraySplit(*digits.render(data["n_train"], data["crop"], data["seed"], "train"))
            val = ArraySplit(*digits.render(data["n_val"], data["crop"], data["seed"], "val"))
        elif kind == "cifar":
            train, val = (load_cifar(data_root(), data["name"], s) for s in ("train", "val"))
        else:
            root = data_root() / data["name"]
            classes = folder_classes(root / "train")
            train, val = load_folder(root / "train", classes), load_folder(root / "val", classes)
        return _subset(train, data["n_train"], data["seed"]), _subset(val, data["n_val"], data["seed"] + 1)

    def batch(self, split, idx: torch.Tensor, config: dict, generator: torch.Generator | None,
              train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(images normalized [B,3,S,S], labels [B]) of the examples ``idx``; a training batch
        augmented by ``generator``."""
        data = config["data"]
        aug = data["augment"]
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALIZE[DATASETS[data["name"]]["kind"]])
        if isinstance(split, FolderSplit):
            offsets = torch.rand(len(idx), 2, generator=generator) if train and aug["random_crop"] else None
            images = torch.stack([decode(split.paths[i], data["resize"], data["crop"],
                                         None if offsets is None else tuple(offsets[k].tolist()))
                                  for k, i in enumerate(idx.tolist())])
        else:
            images = split.images[idx]
        images = images.float() / 255.0
        if train and aug["pad_crop"]:
            images = pad_crop(images, aug["pad_crop"], generator)
        if train and aug["flip"]:
            flip = torch.rand(len(idx), generator=generator) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(3), images)
        return (images - mean) / std, split.labels[idx]

    # --- model, loss, evaluation ----------------------------------------------------------------
    def build_model(self, config: dict) -> torch.nn.Module:
        return build_network(config, config["model"])

    def measure(self, config: dict) -> dict[str, float]:
        """Structure of the row's network for one image at the configured input size."""
        size = config["data"]["input_size"]
        return measure(self.build_model(config), (3, size, size))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, config: dict) -> torch.Tensor:
        return F.cross_entropy(logits, labels)

    def distill_targets(self, teacher_logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(teacher_logits, dim=1)

    def distill_loss(self, logits: torch.Tensor, soft_targets: torch.Tensor, config: dict) -> torch.Tensor:
        """Cross-entropy against the teacher's softmax (temperature 1)."""
        return -(soft_targets * F.log_softmax(logits, dim=1)).sum(1).mean()

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, split, config: dict) -> dict[str, float]:
        """Top-1 / top-5 accuracy and error in percent over the split (top-k with k >= classes is 100%)."""
        model.eval()
        correct = {k: 0 for k in TOPK}
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        for images, labels in batches(self, split, config, train=False):
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            ranked = model(images).topk(min(max(TOPK), config["data"]["classes"]), dim=1).indices
            hits = ranked == labels[:, None]
            for k in TOPK:
                correct[k] += int(hits[:, :k].any(1).sum())
        n = max(len(split), 1)
        metrics = {}
        for k in TOPK:
            metrics[f"top{k}_acc"] = 100.0 * correct[k] / n
            metrics[f"top{k}_err"] = 100.0 - metrics[f"top{k}_acc"]
        return metrics


def pad_crop(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad`` pixels and crop back at a random offset per image (the CIFAR augmentation)."""
    n, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    dx, dy = (torch.randint(0, 2 * pad + 1, (n,), generator=generator) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None].expand(n, 3, h, w + 2 * pad)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :].expand(n, 3, h, w)
    return out.gather(3, cols)


def _subset(split, n: int | None, seed: int):
    """A seeded random subset of ``n`` examples (None or n >= len: the whole split)."""
    if n is None or n >= len(split):
        return split
    keep = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    if isinstance(split, ArraySplit):
        return ArraySplit(split.images[keep], split.labels[keep])
    return FolderSplit([split.paths[i] for i in keep.tolist()], split.labels[keep], split.classes)

