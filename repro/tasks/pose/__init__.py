"""Single-person human pose estimation: stacked hourglasses on MPII (and LSP), scored by PCKh
with the official MPII protocol; synthetic figures for the smoke and proxy profiles."""
from __future__ import annotations

import copy

import torch

from ...errors import ReproError
from ...registry import TASKS
from ..common import check_name, data_root
from ..keypoints import HeatmapTask, KeypointSplit, profile_assumptions
from . import synthetic
from .joints import JOINT_SETS, JointSet
from .pckh import pckh, pckh_auc

STRICT_TOTAL = "pckh_total_at_0.1"  # PCKh@0.1, which later pose papers print beside the AUC


@TASKS.register("pose")
class PoseTask(HeatmapTask):
    """Keypoints are the joints of ``data.joints`` (mpii or lsp); a split's boxes are head boxes."""

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

    def joint_set(self, config: dict) -> JointSet:
        return JOINT_SETS[config["data"]["joints"]]

    def n_keypoints(self, config: dict) -> int:
        return len(self.joint_set(config))

    def flip_pairs(self, config: dict) -> tuple[tuple[int, int], ...]:
        return self.joint_set(config).flip_pairs

    def check_keypoints(self, config: dict) -> None:
        check_name(config["data"]["joints"], JOINT_SETS, "data.joints")

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

    def split(self, arrays: dict, config: dict) -> KeypointSplit:
        keep = list(self.joint_set(config).from_mpii)  # the generator draws MPII's 16 joints: keep the set's
        return KeypointSplit(
            images=torch.from_numpy(arrays["images"]).permute(0, 3, 1, 2).contiguous(),
            keypoints=torch.from_numpy(arrays["joints"][:, keep]).float(),
            visible=torch.from_numpy(arrays["visible"][:, keep]).bool(),
            boxes=torch.from_numpy(arrays["head_boxes"]).float(),
        )

    def evaluate(self, model: torch.nn.Module, split: KeypointSplit, config: dict) -> dict[str, float]:
        predicted, parts = self.predict(model, split, config), self.joint_set(config).parts
        truth = (split.keypoints, split.visible, split.boxes)
        scores = {f"pckh_{part}": value for part, value in
                  pckh(predicted, *truth, threshold=config["eval"]["pckh_threshold"], parts=parts).items()}
        scores[STRICT_TOTAL] = pckh(predicted, *truth, threshold=0.1, parts=parts)["total"]
        scores["pckh_auc"] = pckh_auc(predicted, *truth, parts=parts)
        return scores
