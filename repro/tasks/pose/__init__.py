"""Single-person human pose estimation: stacked hourglasses on MPII (and LSP), scored by PCKh
with the official MPII protocol; synthetic figures for the smoke and proxy profiles."""
from __future__ import annotations

import copy

import torch

from ...datasets import require
from ...errors import ReproError
from ...registry import TASKS
from ..common import check_name, data_root
from ..keypoints import HeatmapTask, KeypointSplit, profile_assumptions
from ..keypoints.files import KeypointFiles
from . import lsp, mpii, synthetic
from .joints import JOINT_SETS, JointSet
from .pckh import pckh, pckh_auc, torso_sizes

# The joint set each dataset annotates in.
NATIVE_JOINTS = {"mpii": "mpii", "lsp": "lsp", "lspet": "lsp"}

STRICT_TOTAL = "pckh_total_at_0.1"  # PCKh@0.1, which later pose papers print beside the AUC


@TASKS.register("pose")
class PoseTask(HeatmapTask):
    """Keypoints are the joints of ``data.joints`` (mpii or lsp); a split's boxes are head boxes.
    ``eval.pck_reference`` (default ``head``): what a distance is divided by, the head size
    (PCKh, MPII's protocol) or the torso size (``torso``: LSP's PCK, pckh.torso_sizes)."""

    name = "pose"
    metrics = ("pckh_total", "pckh_head", "pckh_shoulder", "pckh_elbow", "pckh_wrist", "pckh_hip", "pckh_knee", "pckh_ankle",
               "pckh_ubody", STRICT_TOTAL, "pckh_auc")
    synthetic_data = synthetic

    defaults = copy.deepcopy(HeatmapTask.defaults)
    defaults["data"].update({"name": "mpii", "joints": "mpii"})
    defaults["eval"]["pckh_threshold"] = 0.5
    profiles = copy.deepcopy(HeatmapTask.profiles)
    for _overlay in profiles.values():
        _overlay["data"]["name"] = "synthetic_pose"
    profile_assumptions = profile_assumptions("1000 synthetic figures")
    assumptions = {**HeatmapTask.assumptions,
                   "data.name": "crops as Newell's pose-hg-train: MPII centre moved down by 15 x scale px, side 1.25 x 200 x scale "
                                "(LSP: the whole image about its centre, sec. 4.2.1; LSPET: 1.25 x its labelled joints' extent); "
                                "MPII's split as pose-hg-train's annot/train.h5 and valid.h5 (Tompson et al.'s); scored in the "
                                "crop's pixels, the image's up to one uniform scale (PCKh unchanged)"}

    def joint_set(self, config: dict) -> JointSet:
        return JOINT_SETS[config["data"]["joints"]]

    def n_keypoints(self, config: dict) -> int:
        return len(self.joint_set(config))

    def flip_pairs(self, config: dict) -> tuple[tuple[int, int], ...]:
        return self.joint_set(config).flip_pairs

    def check_keypoints(self, config: dict) -> None:
        check_name(config["data"]["joints"], JOINT_SETS, "data.joints")
        check_name(config["eval"].get("pck_reference", "head"), ("head", "torso"), "eval.pck_reference")

    def check_data(self, config: dict) -> None:
        data = config["data"]
        check_name(data["name"], ("synthetic_pose", *NATIVE_JOINTS), "data.name")
        for name in data.get("extra_train") or []:
            check_name(name, NATIVE_JOINTS, "data.extra_train")
        if data["name"] != "synthetic_pose":
            for name in (data["name"], *(data.get("extra_train") or [])):
                require(name)

    def read_files(self, config: dict) -> tuple[KeypointFiles, KeypointFiles] | None:
        """MPII: Tompson's train / validation persons; LSP: its first / last 1000 images; each
        ``data.extra_train`` dataset added to the training set (joints mapped to ``data.joints``)."""
        data, root = config["data"], data_root()
        if data["name"] == "synthetic_pose":
            return None
        splits = {"mpii": lambda: (mpii.load(root / "mpii", "train"), mpii.load(root / "mpii", "valid")),
                  "lsp": lambda: (lsp.load(root, "lsp", "train"), lsp.load(root, "lsp", "test"))}
        train, val = splits[data["name"]]()
        extra = {"mpii": lambda: mpii.load(root / "mpii", "train"), "lsp": lambda: lsp.load(root, "lsp", "train"),
                 "lspet": lambda: lsp.load(root, "lspet")}
        target = self.joint_set(config)
        train = KeypointFiles.concat([_to_joint_set(files, NATIVE_JOINTS[name], target) for name, files in
                                      [(data["name"], train)] + [(e, extra[e]()) for e in data.get("extra_train") or []]])
        return train, _to_joint_set(val, NATIVE_JOINTS[data["name"]], target)

    def split(self, arrays: dict, config: dict) -> KeypointSplit:
        keep = list(self.joint_set(config).from_mpii)  # the generator draws MPII's 16 joints: keep the set's
        return KeypointSplit(
            images=torch.from_numpy(arrays["images"]).permute(0, 3, 1, 2).contiguous(),
            keypoints=torch.from_numpy(arrays["joints"][:, keep]).float(),
            visible=torch.from_numpy(arrays["visible"][:, keep]).bool(),
            boxes=torch.from_numpy(arrays["head_boxes"]).float(),
        )

    def evaluate(self, model: torch.nn.Module, split: KeypointSplit, config: dict) -> dict[str, float]:
        joints = self.joint_set(config)
        predicted, parts = self.predict(model, split, config), joints.parts
        reference = split.boxes
        if config["eval"].get("pck_reference", "head") == "torso":
            reference = torso_sizes(split.keypoints, joints.names.index("l_shoulder"), joints.names.index("r_hip"))
        truth = (split.keypoints, split.visible, reference)
        scores = {f"pckh_{part}": value for part, value in
                  pckh(predicted, *truth, threshold=config["eval"]["pckh_threshold"], parts=parts).items()}
        scores[STRICT_TOTAL] = pckh(predicted, *truth, threshold=0.1, parts=parts)["total"]
        scores["pckh_auc"] = pckh_auc(predicted, *truth, parts=parts)
        return scores


def _to_joint_set(files: KeypointFiles, native: str, target: JointSet) -> KeypointFiles:
    """``files`` with its joints in ``target``'s order (MPII's 16 map onto any set; a set maps onto itself)."""
    if native == target.name:
        return files
    if native != "mpii":
        raise ReproError(f"data.joints is {target.name}, but {native}-annotated data cannot give its joints: "
                         f"use data.joints: {native}")
    keep = list(target.from_mpii)
    return KeypointFiles(paths=files.paths, keypoints=files.keypoints[:, keep], visible=files.visible[:, keep],
                         boxes=files.boxes, centres=files.centres, sides=files.sides,
                         extra={k: v[:, keep] if v.dim() == 2 and v.shape[1] == 16 else v for k, v in files.extra.items()})
