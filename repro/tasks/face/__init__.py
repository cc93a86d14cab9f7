"""Face alignment with stacked hourglasses: AFLW's 21 landmarks as heatmaps, scored by the NME
by |yaw| range (synthetic faces for the proxies). Network, heatmaps, loss and flip test are the
keypoint task's; the data, the landmarks and the metric are the face's own."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ...datasets import require
from ...errors import ReproError
from ...registry import TASKS
from ..common import check_name, data_root
from ..keypoints import HeatmapTask, KeypointSplit, profile_assumptions
from ..keypoints.files import KeypointFiles
from . import aflw, synthetic
from .landmarks import FLIP_PAIRS, LANDMARK_NAMES
from .nme import nme


@dataclass
class FaceSplit(KeypointSplit):
    """Keypoints are the landmarks, boxes the face boxes (the NME's normalization)."""
    yaw: torch.Tensor  # float [N], degrees


@TASKS.register("face_alignment")
class FaceAlignmentTask(HeatmapTask):
    name = "face_alignment"
    metrics = ("nme", "nme_yaw_0_30", "nme_yaw_30_60", "nme_yaw_60_90")
    synthetic_data = synthetic

    defaults = copy.deepcopy(HeatmapTask.defaults)
    defaults["data"].update({"name": "aflw", "split": "aio_test"})
    defaults["eval"] = {"flip_test": True, "metric": "nme", "nme_normalization": "face_size",
                        "yaw_bins": [[0, 30], [30, 60], [60, 90]]}
    profiles = copy.deepcopy(HeatmapTask.profiles)
    profiles["smoke"]["data"]["name"] = "synthetic_faces"
    profiles["proxy"]["data"].update({"name": "synthetic_faces", "n_val": 600})
    profile_assumptions = profile_assumptions("1000 synthetic faces (AFLW's 21 landmarks, yaw uniform in +-90 degrees, "
                                              "self-occluded landmarks invisible)")

    assumptions = {**HeatmapTask.assumptions,
                   "data.name": "AFLW crop: the face rectangle's centre, side 200 x (w + h) / 195 px (Bulat's face-alignment "
                                "convention); a landmark without a row in FeatureCoords is not labelled"}

    def n_keypoints(self, config: dict) -> int:
        return len(LANDMARK_NAMES)

    def flip_pairs(self, config: dict) -> tuple[tuple[int, int], ...]:
        return FLIP_PAIRS

    def check_keypoints(self, config: dict) -> None:
        evaluation = config["eval"]
        check_name(evaluation["nme_normalization"], ("face_size",), "eval.nme_normalization")
        bins = evaluation["yaw_bins"]
        if not (isinstance(bins, list) and all(isinstance(b, list) and len(b) == 2 and 0 <= b[0] < b[1] <= 90 for b in bins)):
            raise ReproError(f"eval.yaw_bins must be a list of [low, high] degree ranges within [0, 90], got {bins!r}")

    def check_data(self, config: dict) -> None:
        check_name(config["data"]["name"], ("synthetic_faces", "aflw"), "data.name")
        if config["data"]["name"] == "aflw":
            require("aflw")

    def read_files(self, config: dict) -> tuple[KeypointFiles, KeypointFiles] | None:
        """AFLW's training faces and its test set (aflw.py: the list given, or 1000 images drawn with ``data.seed``)."""
        data = config["data"]
        if data["name"] == "synthetic_faces":
            return None
        root = data_root() / "aflw"
        return aflw.load(root, "train", data["seed"]), aflw.load(root, "test", data["seed"])

    def split(self, arrays: dict, config: dict) -> FaceSplit:
        return FaceSplit(
            images=torch.from_numpy(arrays["images"]).permute(0, 3, 1, 2).contiguous(),
            keypoints=torch.from_numpy(arrays["landmarks"]).float(),
            visible=torch.from_numpy(arrays["visible"]).bool(),
            boxes=torch.from_numpy(arrays["face_boxes"]).float(),
            yaw=torch.from_numpy(arrays["yaw"]).float(),
        )

    def evaluate(self, model: torch.nn.Module, split: FaceSplit, config: dict) -> dict[str, float]:
        bins = [tuple(b) for b in config["eval"]["yaw_bins"]]
        return nme(self.predict(model, split, config), split.keypoints, split.visible, split.boxes, split.yaw, bins)
