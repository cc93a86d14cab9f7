"""The real datasets' loaders on tiny fixtures written in the official on-disk formats
(repro/tasks/fixtures.py): parsing and splits, joint order and flip pairs, visibility, head
boxes, centre and scale, face boxes and yaw, the crops, damaged files, and `repro data check`."""
from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest
import torch

from repro.errors import ReproError
from repro.tasks import fixtures
from repro.tasks.face import aflw
from repro.tasks.face.landmarks import FLIP_PAIRS as FACE_FLIP_PAIRS
from repro.tasks.face.landmarks import LANDMARK_NAMES
from repro.tasks.keypoints.files import KeypointFiles, crop_matrix, read_image
from repro.tasks.keypoints.heatmaps import flip_permutation
from repro.tasks.pose import lsp, mpii
from repro.tasks.pose.joints import JOINT_SETS


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """Every dataset's fixture under one data folder (REPRO_DATA_DIR), written once."""
    root = tmp_path_factory.mktemp("data")
    written = {"mpii": fixtures.write_mpii(root / "mpii"), "lsp": fixtures.write_lsp(root, "lsp"),
               "lspet": fixtures.write_lsp(root, "lspet", n=12, size=(96, 80)), "aflw": fixtures.write_aflw(root)}
    fixtures.write_cifar(root, "cifar10")
    fixtures.write_cifar(root, "cifar100")
    fixtures.write_image_folders(root, "imagenet")
    fixtures.write_image_folders(root, "imagenet_subset", classes=100, per_class=1)  # liu2020 Table 9: 100 classes
    for name in ("duts_tr", "duts_test", "ecssd", "hku_is", "pascal_s", "dut_omron"):  # saliency (liu2020 Table 10)
        fixtures.write_saliency(root, name, n=2)
    return root, written


def copy_of(data_dir, tmp_path, name: str):
    root, _ = data_dir
    shutil.copytree(root / name, tmp_path / name)
    return tmp_path


# --- MPII -------------------------------------------------------------------------------------

@pytest.mark.parametrize("with_mat", [True, False])
def test_mpii_splits_joints_visibility_head_boxes_centre_and_scale(data_dir, tmp_path, with_mat):
    root, written = data_dir
    if not with_mat:
        root = copy_of(data_dir, tmp_path, "mpii")
        (root / "mpii" / mpii.MAT_NAME).unlink()
    for split, expected in written["mpii"].items():
        persons = mpii.load(root / "mpii", split)
        assert len(persons) == len(expected) and persons.paths == [str(root / "mpii" / "images" / p["name"]) for p in expected]
        for i, person in enumerate(expected):
            labelled = torch.from_numpy(person["labelled"])
            assert torch.equal(persons.visible[i], labelled)  # pelvis not annotated: not labelled
            assert persons.occluded[i].tolist() == [j == 0 for j in range(16)]  # is_visible 0: labelled, occluded
            np.testing.assert_allclose(persons.keypoints[i][labelled], person["joints"][person["labelled"]], atol=1e-3)
            np.testing.assert_allclose(persons.centres[i], person["centre"] + [0, 15 * person["scale"]], atol=1e-3)
            assert persons.sides[i].item() == pytest.approx(1.25 * 200 * person["scale"], rel=1e-5)
            box = persons.boxes[i].double().numpy()
            head_size = 0.6 * np.hypot(*(box[2:] - box[:2]))
            assert head_size == pytest.approx(0.6 * np.hypot(*(person["head_box"][2:] - person["head_box"][:2])), rel=1e-5)
            if with_mat:  # the official head box itself, made 0-based
                np.testing.assert_allclose(box, person["head_box"], atol=1e-3)


def test_mpii_h5_naming_a_person_the_mat_lacks_is_one_error(data_dir, tmp_path):
    import h5py

    root = copy_of(data_dir, tmp_path, "mpii")
    with h5py.File(root / "mpii" / "annot" / "valid.h5", "r+") as handle:
        handle["person"][0] = 1  # the unannotated second person of an image, or none at all
    with pytest.raises(ReproError, match=r"valid.h5 lists image \d+ person 1 .*different releases"):
        mpii.load(root / "mpii", "valid")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_mpii_annotations_name_the_file(data_dir, tmp_path, damage):
    root = copy_of(data_dir, tmp_path, "mpii")
    for path in (root / "mpii" / "annot" / "train.h5", root / "mpii" / mpii.MAT_NAME):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a file of this kind" * 10)
        with pytest.raises(ReproError, match=rf"{path.name}: .*(damaged|again)") as error:
            mpii.load(root / "mpii", "train")
        assert "\n" not in str(error.value)
        path.write_bytes(data)


# --- LSP / LSPET ------------------------------------------------------------------------------

def test_lsp_split_order_visibility_and_crop(data_dir):
    root, written = data_dir
    truth = written["lsp"]
    train, test = lsp.load(root, "lsp", "train"), lsp.load(root, "lsp", "test")
    assert (len(train), len(test)) == (1000, 1000)
    assert train.paths[0].endswith("im0001.jpg") and test.paths[0].endswith("im1001.jpg") and test.paths[-1].endswith("im2000.jpg")
    np.testing.assert_allclose(test.keypoints, truth["joints"][1000:], atol=1e-4)  # 1-based in the file, 0-based here
    assert bool(test.visible.all())  # every LSP joint has a position: all scored, occluded ones too
    assert test.occluded[:, 12].all() and not test.occluded[:, :12].any()  # flag 1 = occluded (LSP's convention)
    np.testing.assert_allclose(test.centres[0], [(48 - 1) / 2, (64 - 1) / 2])  # the image centre ...
    assert test.sides[0].item() == 64  # ... and the whole image (liu2020 sec. 4.2.1)
    assert torch.isnan(test.boxes).all()  # no head boxes: LSP's PCK uses the torso


def test_lspet_flags_mean_visible(data_dir):
    root, written = data_dir
    truth = written["lspet"]
    extended = lsp.load(root, "lspet")
    assert len(extended) == 12 and extended.paths[0].endswith("im00001.jpg")
    assert not extended.visible[:, 0].any() and extended.visible[:, 1:].all()  # flag 0: no position, not labelled
    np.testing.assert_allclose(extended.keypoints[:, 1:], truth["joints"][:, 1:], atol=1e-4)
    labelled = truth["joints"][0, 1:]
    np.testing.assert_allclose(extended.centres[0], (labelled.min(0) + labelled.max(0)) / 2, atol=1e-4)
    assert extended.sides[0].item() == pytest.approx(1.25 * (labelled.max(0) - labelled.min(0)).max(), rel=1e-5)


def test_lsp_and_lspet_files_swapped_is_one_error(data_dir, tmp_path):
    root = copy_of(data_dir, tmp_path, "lsp")
    shutil.copy(data_dir[0] / "lspet" / "joints.mat", root / "lsp" / "joints.mat")
    with pytest.raises(ReproError, match=r"lsp/joints.mat: 'joints' is \(14, 3, 12\), LSP's is 3 x 14 x 2000"):
        lsp.load(root, "lsp", "test")


# --- AFLW -------------------------------------------------------------------------------------

def test_aflw_faces_landmarks_boxes_and_yaw(data_dir, tmp_path):
    root = copy_of(data_dir, tmp_path, "aflw") / "aflw"
    faces = data_dir[1]["aflw"]["faces"]
    (root / "test_faces.txt").write_text(f"{faces[0]['face_id']}\n{faces[3]['face_id']}\n")
    test, train = aflw.load(root, "test", seed=0), aflw.load(root, "train", seed=0)
    assert len(test) == 2 and len(train) == len(faces) - 2
    assert test.face_id.tolist() == [faces[0]["face_id"], faces[3]["face_id"]]
    for i, face in enumerate([faces[0], faces[3]]):
        assert test.paths[i] == str(root / "flickr" / face["path"])
        np.testing.assert_allclose(test.boxes[i], face["box"])  # (x, y, w, h) -> (x1, y1, x2, y2)
        assert test.yaw[i].item() == pytest.approx(np.degrees(face["yaw"]), rel=1e-5)  # radians -> degrees
        assert test.visible[i].tolist() == [k != 12 for k in range(21)]  # landmark 13 has no row: not labelled
        np.testing.assert_allclose(test.keypoints[i][test.visible[i]], np.delete(face["landmarks"], 12, axis=0), atol=1e-4)
        x1, y1, x2, y2 = face["box"]
        np.testing.assert_allclose(test.centres[i], [(x1 + x2) / 2, (y1 + y2) / 2])
        assert test.sides[i].item() == pytest.approx(200 * ((x2 - x1) + (y2 - y1)) / 195, rel=1e-5)


def test_aflw_default_test_set_is_whole_images_drawn_by_seed(data_dir):
    root = data_dir[0] / "aflw"
    test, train = aflw.load(root, "test", seed=0), aflw.load(root, "train", seed=0)
    assert set(test.paths).isdisjoint(train.paths)  # both faces of an image go to the same side
    assert len(set(test.paths)) == 4  # min(1000 images, half of the fixture's 8)
    assert aflw.load(root, "test", seed=0).face_id.tolist() == test.face_id.tolist()
    assert len(test) + len(train) == 9


def test_aflw_damaged_database_names_the_file(data_dir, tmp_path):
    root = copy_of(data_dir, tmp_path, "aflw") / "aflw"
    database = root / "aflw.sqlite"
    database.write_bytes(database.read_bytes()[:1000])
    with pytest.raises(ReproError, match=r"aflw.sqlite: .*(damaged|not AFLW)"):
        aflw.load(root, "test", seed=0)
    database.unlink()
    sqlite3.connect(database).execute("CREATE TABLE Faces (face_id INTEGER)").connection.commit()
    with pytest.raises(ReproError, match=r"aflw.sqlite: no table FaceImages, FaceRect, FacePose, FeatureCoords"):
        aflw.load(root, "test", seed=0)


# --- joint order and flip pairs ---------------------------------------------------------------

@pytest.mark.parametrize("names, pairs", [(JOINT_SETS["mpii"].names, JOINT_SETS["mpii"].flip_pairs),
                                          (JOINT_SETS["lsp"].names, JOINT_SETS["lsp"].flip_pairs),
                                          (LANDMARK_NAMES, FACE_FLIP_PAIRS)])
def test_flip_pairs_swap_left_and_right_and_nothing_else(names, pairs):
    swap = {"r": "l", "l": "r", "left": "right", "right": "left"}

    def mirrored(name: str) -> str:
        return "_".join(swap.get(token, token) for token in name.split("_"))

    for a, b in pairs:
        assert mirrored(names[a]) == names[b] != names[a]
    paired = {j for pair in pairs for j in pair}
    assert all(mirrored(name) == name for i, name in enumerate(names) if i not in paired)  # the centre line


def test_lsp_joint_order_is_lsps():
    assert JOINT_SETS["lsp"].names == ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow",
                                       "r_shoulder", "l_shoulder", "l_elbow", "l_wrist", "upper_neck", "head_top")


# --- the crops -------------------------------------------------------------------------------

def test_crops_put_every_keypoint_on_its_disc(data_dir):
    """Evaluation crops and augmented ones (flip, scale, rotation): the pixel under each labelled
    keypoint is the white disc drawn there, so images and keypoints went through one matrix."""
    root, _ = data_dir
    persons = mpii.load(root / "mpii", "train")
    augment = {"flip": True, "scale": [0.75, 1.25], "rotate": 30.0}
    pairs = JOINT_SETS["mpii"].flip_pairs
    for generator in (None, torch.Generator().manual_seed(3)):
        images, keypoints, visible, boxes = persons.batch(torch.arange(len(persons)), 128, generator, augment, pairs)
        assert images.shape == (len(persons), 3, 128, 128) and images.dtype == torch.float32 and 0 <= images.min() <= images.max() <= 1
        inside = visible & ((keypoints >= 0) & (keypoints <= 127)).all(-1)
        assert inside.sum() >= 0.8 * visible.sum() > 0
        for b, j in inside.nonzero().tolist():
            x, y = keypoints[b, j].round().long().tolist()
            assert images[b, :, y, x].min() > 0.8, (generator, b, j)


def test_a_flip_mirrors_the_keypoints_and_swaps_left_and_right(data_dir):
    root, _ = data_dir
    persons = mpii.load(root / "mpii", "valid")
    pairs = JOINT_SETS["mpii"].flip_pairs
    plain = persons.batch(torch.arange(len(persons)), 64, None, {}, pairs)
    mirrored = persons.batch(torch.arange(len(persons)), 64, torch.Generator().manual_seed(0),
                             {"flip": True, "scale": [1.0, 1.0], "rotate": 0.0}, pairs)
    flipped = torch.tensor([not torch.allclose(m, p) for m, p in zip(mirrored[1], plain[1])])
    assert flipped.any()
    perm = flip_permutation(pairs, 16)
    for b in flipped.nonzero().flatten().tolist():
        expected = plain[1][b][perm].clone()
        expected[:, 0] = 63 - expected[:, 0]
        labelled = mirrored[2][b]
        torch.testing.assert_close(mirrored[1][b][labelled], expected[labelled], atol=1e-4, rtol=0)
        torch.testing.assert_close(mirrored[0][b], plain[0][b].flip(-1), atol=2 / 255, rtol=0)


def test_crop_matrix_maps_the_square_onto_the_output():
    """The square of side 100 about (50, 40) covers the 256-pixel output's area [-0.5, 255.5] exactly."""
    matrix = crop_matrix((50.0, 40.0), 100.0, 256)
    corners = np.array([[0.0, -10.0, 1.0], [100.0, 90.0, 1.0], [50.0, 40.0, 1.0]]) @ matrix.T
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [255.5, 255.5], [127.5, 127.5]])
    turned = crop_matrix((0.0, 0.0), 256.0, 256, scale=2.0, angle=90.0, flip=True)
    # (1, 0) about the centre: mirrored to (-1, 0), turned by R(90) = [[0, -1], [1, 0]] to (0, -1), zoomed x 2
    np.testing.assert_allclose(np.array([1.0, 0.0, 1.0]) @ turned.T, [127.5, 127.5 - 2.0])


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_a_damaged_image_names_its_file(data_dir, tmp_path, damage):
    root = copy_of(data_dir, tmp_path, "mpii")
    persons = mpii.load(root / "mpii", "valid")
    path = persons.paths[0]
    data = open(path, "rb").read()
    if damage == "missing":
        import os
        os.remove(path)
    else:
        open(path, "wb").write(data[: len(data) // 2] if damage == "truncate" else b"GIF89a not really" * 20)
    with pytest.raises(ReproError, match=rf"{path}: cannot be read") as error:
        persons.batch(torch.arange(1), 64, None, {}, ())
    assert "\n" not in str(error.value)
    with pytest.raises(ReproError):
        read_image(path)


def test_files_take_and_concat_keep_every_field(data_dir):
    root, _ = data_dir
    persons = mpii.load(root / "mpii", "train")
    both = KeypointFiles.concat([persons, persons.take([1, 0])])
    assert len(both) == len(persons) + 2 and both.paths[-1] == persons.paths[0]
    torch.testing.assert_close(both.occluded[-2:], persons.occluded[[1, 0]])
    torch.testing.assert_close(both.sides[-1], persons.sides[0])


# --- repro data check --------------------------------------------------------------------------

def test_data_check_reports_found_counts_and_missing(data_dir, tmp_path, cli, monkeypatch):
    root, _ = data_dir
    monkeypatch.setenv("REPRO_DATA_DIR", str(root))
    code, out, _ = cli("data", "check")
    assert code == 0
    assert "mpii: usable, counts differ" in out and "train persons: 6 (official: 22246)" in out
    assert "valid persons: 4 (official: 2958)" in out and "lsp: complete" in out and "images: 2000 (official)" in out
    assert "faces: 9 (official: 25993)" in out and "train images: 20 (official: 50000)" in out
    code, out, _ = cli("data", "check", "--dataset", "mpii", "--format", "json")
    (report,) = json.loads(out)
    assert code == 0 and report["usable"] and not report["complete"]
    assert {"what": "valid persons", "found": 4, "official": 2958} in report["counts"]

    monkeypatch.setenv("REPRO_DATA_DIR", str(tmp_path))
    shutil.copytree(root / "mpii", tmp_path / "mpii")
    missing_image = sorted((tmp_path / "mpii" / "images").iterdir())[-1]
    missing_image.unlink()
    (tmp_path / "mpii" / "annot" / "train.h5").unlink()
    code, out, _ = cli("data", "check", "--dataset", "mpii")
    assert code == 1 and "mpii: MISSING" in out
    assert f"annot/train.h5: put pose-hg-train's data/mpii/annot/train.h5 at {tmp_path / 'mpii' / 'annot' / 'train.h5'}" in out
    shutil.copy(root / "mpii" / "annot" / "train.h5", tmp_path / "mpii" / "annot" / "train.h5")
    code, out, _ = cli("data", "check", "--dataset", "mpii")
    assert code == 1 and f"1 of the 4 valid images, e.g. {missing_image.name}: put them in {tmp_path / 'mpii' / 'images'}" in out
    code, _, err = cli("data", "check", "--dataset", "coco")
    assert code == 2 and err.startswith("repro: error: unknown dataset 'coco'")


def test_paper_run_without_its_data_is_one_line_and_touches_nothing(workdir, cli, monkeypatch):
    monkeypatch.setenv("REPRO_DATA_DIR", str(workdir / "nowhere"))
    code, out, err = cli("run", "--paper", "bulat2019", "--table", "1", "--profile", "paper")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"repro: error: mpii is not ready: images/: put MPII's images (mpii_human_pose_v1.tar.gz, folder images/) "
                          f"in {workdir / 'nowhere' / 'mpii' / 'images'}")
    assert not (workdir / "results.db").exists()


# --- every paper row of the keypoint and classification tables gets as far as training ---------

def _paper_tables():
    from repro.plugins import discover

    return [(p.id, t) for p in discover().values() for t in p.tables.values()
            if t.task in ("pose", "face_alignment", "classification") and any(r.runnable for r in t.rows)]


@pytest.fixture
def on_fixtures(data_dir, monkeypatch):
    from repro import datasets

    monkeypatch.setenv("REPRO_DATA_DIR", str(data_dir[0]))
    monkeypatch.setenv("REPRO_DATA_WORKERS", "0")
    datasets._REQUIRED.clear()
    yield data_dir[0]
    datasets._REQUIRED.clear()


def test_every_paper_row_reaches_training_on_the_fixtures(on_fixtures):
    """Each runnable row of each pose, face and classification table, at ``paper``: its data
    checked, both splits loaded from the files, a training batch of the row's input size built."""
    from repro.config import resolve
    from repro.tasks import get_task

    rows = 0
    for paper_id, table in _paper_tables():
        task = get_task(table.task)
        for row in (r for r in table.rows if r.runnable):
            config = resolve(table, row, "paper", 0).config
            task.check_data(config)
            train, val = task.load_data(config)
            assert len(train) > 0 and len(val) > 0, (paper_id, table.id, row.id)
            images, targets = task.batch(train, torch.arange(2), config, torch.Generator().manual_seed(0), True)
            size = config["data"]["input_size"]
            assert images.shape == (2, 3, size, size) and torch.isfinite(images).all(), (paper_id, table.id, row.id)
            if table.task != "classification":
                assert targets["heatmaps"].shape == (2, task.n_keypoints(config), size // 4, size // 4)
            rows += 1
    assert rows >= 100


def _shrunk(config: dict) -> dict:
    """A paper config at a size that trains in seconds: the data path is the paper's."""
    config["train"].update({"epochs": 1, "batch_size": 4})
    config["data"].update({"n_train": 8, "n_val": 4})
    if config["task"] == "classification":
        config["model"]["width"] = 0.125
        if config["data"]["resize"]:
            config["data"].update({"resize": 128, "crop": 112, "input_size": 112})  # ImageNet networks downsample 32x
    else:
        config["model"].update({"features": 16, "depth": 2, "stacks": 1})
        config["data"].update({"input_size": 64, "heatmap_size": 16})
    return config


@pytest.mark.parametrize("paper, table, row", [("bulat2019", "1", "prelu"), ("liu2020", "7", "lbrn_p"), ("bulat2017", "9", "ours"),
                                               ("liu2020", "9", None), ("bulat2019", "4", None)])
def test_a_paper_row_trains_and_scores_on_the_files_in_workers(on_fixtures, tmp_path, monkeypatch, paper, table, row):
    """One epoch on each kind of file (MPII, LSP + LSPET + MPII, AFLW, CIFAR, ImageNet folders),
    batches built in two DataLoader workers; the scores are the task's, finite where defined."""
    import math

    from repro.config import resolve
    from repro.plugins import get_paper
    from repro.tasks import get_task
    from repro.train import train_run

    monkeypatch.setenv("REPRO_DATA_WORKERS", "2")
    chosen = get_paper(paper).table(table)
    row = chosen.row(row) if row else next(r for r in chosen.rows if r.runnable)
    config = _shrunk(resolve(chosen, row, "paper", 0).config)
    metrics = train_run(config, tmp_path / "run", log=lambda values, step: None, threads=1)
    task = get_task(chosen.task)
    assert set(task.metrics) <= set(metrics)
    assert all(math.isfinite(metrics[m]) for m in task.metrics if not m.startswith("nme_yaw")), metrics


def test_worker_batches_equal_in_process_batches_and_resume_alike(data_dir, monkeypatch):
    """The same epoch with 0 and 2 DataLoader workers, and resumed at its second batch: the same
    images and targets, bit for bit (each batch's augmentation comes from its own seed)."""
    import copy

    from repro.data import batches
    from repro.tasks.pose import PoseTask

    task = PoseTask()
    config = copy.deepcopy(task.defaults)
    config["data"].update({"input_size": 64, "heatmap_size": 16})
    config["train"]["batch_size"] = 3
    persons = mpii.load(data_dir[0] / "mpii", "train")

    def epoch(workers: str, start: int = 0):
        monkeypatch.setenv("REPRO_DATA_WORKERS", workers)
        return list(batches(task, persons, config, seed=5, train=True, start=start))

    alone, pooled, resumed = epoch("0"), epoch("2"), epoch("2", start=1)
    assert len(alone) == len(pooled) == 2 and len(resumed) == 1
    for (images, targets), (images2, targets2) in zip(alone + alone[1:], pooled + resumed):
        assert torch.equal(images, images2)
        assert all(torch.equal(targets[k], targets2[k]) for k in targets)
    monkeypatch.setenv("REPRO_DATA_WORKERS", "many")
    with pytest.raises(ReproError, match="REPRO_DATA_WORKERS must be a number"):
        epoch("many")


def test_data_bench_measures_the_pose_data_path(cli, monkeypatch):
    """A short real measurement (the command's figures come from longer runs of the same code)."""
    from repro.machine import cpu_model
    from repro.tasks.pose import bench

    result = bench.run(workers=2, images=12, n_batches=8)
    assert result["cpu_model"] == cpu_model() and result["workers"] == 2
    assert result["samples_per_s"] > 0 and result["samples_per_s_per_core"] > 0 and result["full_decode_ms"] > 0
    assert result["image"].startswith("1280x720 JPEG") and result["input_size"] == 256 and result["heatmap_size"] == 64
    monkeypatch.setattr(bench, "run", lambda workers=None: result)
    code, out, _ = cli("data", "bench", "--format", "json")
    assert code == 0 and json.loads(out) == json.loads(json.dumps(result))
    code, out, _ = cli("data", "bench")
    assert code == 0 and f"{result['samples_per_s_per_core']:.1f} samples/s per core" in out and cpu_model() in out
    code, _, err = cli("data", "bench", "--workers", "0")
    assert code == 2 and "workers" in err


def test_damaged_cifar_and_imagenet_files_name_the_file(data_dir, tmp_path):
    from repro.tasks.classification.datasets import decode, load_cifar

    root = copy_of(data_dir, tmp_path, "cifar-10-batches-py")
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(ReproError, match=r"data_batch_3: not a readable cifar10 batch .*damaged or truncated"):
        load_cifar(root, "cifar10", "train")
    image = next((data_dir[0] / "imagenet" / "train").rglob("*.JPEG"))
    broken = tmp_path / "broken.JPEG"
    broken.write_bytes(image.read_bytes()[:300])
    with pytest.raises(ReproError, match=r"broken.JPEG: cannot be read as an image"):
        decode(broken, 64, 56, None)


def test_a_damaged_image_met_by_a_worker_is_still_one_line(data_dir, tmp_path, monkeypatch):
    import copy
    import multiprocessing

    from repro.data import batches
    from repro.tasks.pose import PoseTask

    root = copy_of(data_dir, tmp_path, "mpii")
    persons = mpii.load(root / "mpii", "train")
    open(persons.paths[2], "wb").write(b"not an image" * 50)
    task, config = PoseTask(), copy.deepcopy(PoseTask.defaults)
    config["data"].update({"input_size": 64, "heatmap_size": 16})
    config["train"]["batch_size"] = 2
    monkeypatch.setenv("REPRO_DATA_WORKERS", "2")
    before = set(multiprocessing.active_children())
    with pytest.raises(ReproError) as error:
        list(batches(task, persons, config, seed=0, train=False))
    assert set(multiprocessing.active_children()) <= before  # the workers were stopped
    assert str(error.value) == (f"{persons.paths[2]}: cannot be read as an image (not an image): replace it with the "
                                f"dataset's original file, then run `repro data check`")


def test_workers_leave_a_stop_to_the_training_process(data_dir, monkeypatch):
    """SIGINT and SIGUSR2 to every process (Ctrl-C, submitit before a time limit): the workers live
    on and the epoch's batches all arrive, the stop being the training process's to make."""
    import copy
    import multiprocessing
    import os
    import signal

    from repro.data import batches
    from repro.tasks.pose import PoseTask

    persons = KeypointFiles.concat([mpii.load(data_dir[0] / "mpii", "train")] * 4)
    task, config = PoseTask(), copy.deepcopy(PoseTask.defaults)
    config["data"].update({"input_size": 64, "heatmap_size": 16})
    config["train"]["batch_size"] = 2
    monkeypatch.setenv("REPRO_DATA_WORKERS", "2")
    before = {process.pid for process in multiprocessing.active_children()}
    stream = batches(task, persons, config, seed=0, train=True)
    received = [next(stream)]
    children = [process.pid for process in multiprocessing.active_children() if process.pid not in before]
    assert len(children) == 2  # the DataLoader's workers, nothing else
    for pid in children:
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGUSR2)
    received += list(stream)
    assert len(received) == 12
    assert not {process.pid for process in multiprocessing.active_children()} - before  # stopped with the epoch


def test_a_worker_killed_by_the_stop_signal_still_checkpoints_where_the_run_stands(on_fixtures, tmp_path, monkeypatch):
    """SLURM's SIGTERM reaches the data workers before the training process stops: the run saves
    its checkpoint at the batch it stands at and resumes to the same final metrics as a run never stopped."""
    import multiprocessing
    import os
    import signal

    from repro import train
    from repro.config import resolve
    from repro.plugins import get_paper

    monkeypatch.setenv("REPRO_DATA_WORKERS", "2")
    table = get_paper("bulat2019").table("1")
    config = _shrunk(resolve(table, table.row("prelu"), "paper", 0).config)
    config["data"]["n_train"] = 16
    whole = train.train_run(config, tmp_path / "whole", log=lambda values, step: None, threads=1)

    real_batches = train.batches

    def killing_batches(*args, **kwargs):  # the real batches; after the first, the stop arrives and kills the workers
        stream = real_batches(*args, **kwargs)
        yield next(stream)
        train.STOP.set()
        for process in multiprocessing.active_children():
            os.kill(process.pid, signal.SIGTERM)
            process.join(5)
        yield from stream

    monkeypatch.setattr(train, "batches", killing_batches)
    with pytest.raises(train.Interrupted, match="epoch 1, after batch 1: checkpoint saved"):
        train.train_run(config, tmp_path / "stopped", log=lambda values, step: None, threads=1)
    train.STOP.clear()
    monkeypatch.setattr(train, "batches", real_batches)
    resumed = train.train_run(config, tmp_path / "stopped", log=lambda values, step: None, threads=1)
    assert resumed == whole
