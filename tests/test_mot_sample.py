"""Tests of the synthetic MOT17/MOT20 sample generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.errors import UnknownNameError
from harness.plugin import SAMPLE_MARKER
from motcom.io import read_detections, read_ground_truth, read_seqinfo, read_tracks
from motcom.plugin import MOT17Plugin, MOT20Plugin
from motcom.sample import IMAGE_SIZE, write_mot_sample


def all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return write_mot_sample(tmp_path_factory.mktemp("s"), sequences=2, frames=50, pedestrians=6)


def test_sample_layout(sample):
    assert (sample / SAMPLE_MARKER).is_file()
    train = sample / "MOT17" / "train"
    assert sorted(p.name for p in train.iterdir()) == [
        "MOT17-02-DPM", "MOT17-02-FRCNN", "MOT17-02-SDP",
        "MOT17-04-DPM", "MOT17-04-FRCNN", "MOT17-04-SDP",
    ]
    trackers = sorted(p.name for p in (sample / "trackers" / "noisytracker").iterdir())
    assert trackers == [f"{name}.txt" for name in sorted(p.name for p in train.iterdir())]
    info = read_seqinfo(train / "MOT17-02-SDP" / "seqinfo.ini")
    assert info.name == "MOT17-02-SDP"
    assert info.seq_length == 50
    assert (info.im_width, info.im_height) == IMAGE_SIZE
    assert not (train / "MOT17-02-SDP" / "img1").exists()


def test_sample_is_deterministic(tmp_path):
    first = write_mot_sample(tmp_path / "a", sequences=1, frames=20, seed=3)
    second = write_mot_sample(tmp_path / "b", sequences=1, frames=20, seed=3)
    other = write_mot_sample(tmp_path / "c", sequences=1, frames=20, seed=4)
    assert all_files(first) == all_files(second)
    assert all_files(first) != all_files(other)


def test_sample_ground_truth_content(sample):
    folder = sample / "MOT17" / "train" / "MOT17-02-SDP"
    text = (folder / "gt" / "gt.txt").read_text()
    gt = read_ground_truth(folder / "gt" / "gt.txt", seq_length=50)

    assert len(text.splitlines()[0].split(",")) == 9
    order = np.lexsort((gt.frame, gt.id))
    assert np.array_equal(order, np.arange(len(gt)))  # sorted by id, then frame
    pedestrians = gt.cls == 1
    assert np.all(gt.flag[pedestrians] == 1)
    assert np.all(gt.flag[~pedestrians] == 0)
    assert set(np.unique(gt.cls[~pedestrians])) <= {2, 7, 8, 12, 9, 10, 11}
    assert np.isin(gt.cls, [2, 7, 8, 12]).any()
    assert np.isin(gt.cls, [9, 10, 11]).any()
    assert gt.visibility.min() >= 0
    assert gt.visibility.max() <= 1
    assert gt.visibility.min() < 0.3  # some boxes are mostly hidden


def test_sample_motion_is_smooth(sample):
    gt = read_ground_truth(sample / "MOT17" / "train" / "MOT17-04-SDP" / "gt" / "gt.txt")
    same_track = (gt.id[1:] == gt.id[:-1]) & (gt.frame[1:] == gt.frame[:-1] + 1)
    step = np.abs(np.diff(gt.boxes[:, :2], axis=0))[same_track]
    assert step.max() < 15


def test_sample_copies_share_gt_but_not_noise(sample):
    train = sample / "MOT17" / "train"
    gts = {(train / f"MOT17-02-{d}" / "gt" / "gt.txt").read_bytes() for d in ("DPM", "FRCNN",
                                                                               "SDP")}
    assert len(gts) == 1
    trackers = sample / "trackers" / "noisytracker"
    outputs = {(trackers / f"MOT17-02-{d}.txt").read_bytes() for d in ("DPM", "FRCNN", "SDP")}
    assert len(outputs) == 3
    dets = {(train / f"MOT17-02-{d}" / "det" / "det.txt").read_bytes() for d in ("DPM", "FRCNN",
                                                                                 "SDP")}
    assert len(dets) == 3


def test_sample_tracker_and_detections_readable(sample):
    train = sample / "MOT17" / "train"
    for folder in train.iterdir():
        tracks = read_tracks(sample / "trackers" / "noisytracker" / f"{folder.name}.txt",
                             seq_length=50)
        assert len(tracks) > 0
        assert np.all(np.diff(tracks.frame) >= 0)
        dets = read_detections(folder / "det" / "det.txt")
        assert np.all(dets.id == -1)
    dpm = read_detections(train / "MOT17-02-DPM" / "det" / "det.txt")
    assert dpm.conf.min() < 0 or dpm.conf.max() > 1  # raw DPM scores


def test_sample_tracker_noise_scores(sample):
    evaluation = pytest.importorskip("motcom.evaluation")
    folder = sample / "MOT17" / "train" / "MOT17-02-SDP"
    gt = read_ground_truth(folder / "gt" / "gt.txt")
    tracks = read_tracks(sample / "trackers" / "noisytracker" / "MOT17-02-SDP.txt")

    res = evaluation.evaluate_sequence(gt, tracks, 50, benchmark="MOT17")
    plain = evaluation.evaluate_sequence(gt, tracks, 50, benchmark=None)

    assert 0.3 < res["MOTA"] < 0.98
    assert res["IDSW"] > 0
    assert res["CLR_FP"] > 0
    assert res["CLR_FN"] > 0
    assert plain["CLR_FP"] > res["CLR_FP"]  # boxes on distractors count only without preprocessing


def test_sample_mot20_class_six(tmp_path):
    root = write_mot_sample(tmp_path, benchmark="MOT20", sequences=1, frames=30, pedestrians=4)
    gt = read_ground_truth(root / "MOT20" / "train" / "MOT20-01" / "gt" / "gt.txt")
    assert 6 in gt.cls
    assert (root / "trackers" / "noisytracker" / "MOT20-01.txt").is_file()
    assert read_seqinfo(root / "MOT20" / "train" / "MOT20-01" / "seqinfo.ini").frame_rate == 25


def test_sample_trackeval_layout(tmp_path):
    root = write_mot_sample(tmp_path, sequences=1, frames=20, layout="trackeval",
                            tracker="mine")
    gt_root = root / "gt" / "mot_challenge"
    seqmap = (gt_root / "seqmaps" / "MOT17-train.txt").read_text().splitlines()
    assert seqmap == ["name", "MOT17-02-DPM", "MOT17-02-FRCNN", "MOT17-02-SDP"]
    assert (gt_root / "MOT17-train" / "MOT17-02-SDP" / "gt" / "gt.txt").is_file()
    data = root / "trackers" / "mot_challenge" / "MOT17-train" / "mine" / "data"
    assert sorted(p.name for p in data.iterdir()) == [f"{n}.txt" for n in seqmap[1:]]


def test_sample_images(tmp_path):
    from PIL import Image

    root = write_mot_sample(tmp_path, sequences=1, frames=5, images=True)
    for copy in ("DPM", "FRCNN", "SDP"):
        images = sorted((root / "MOT17" / "train" / f"MOT17-02-{copy}" / "img1").iterdir())
        assert [p.name for p in images] == [f"{i:06d}.jpg" for i in range(1, 6)]
    with Image.open(images[0]) as image:
        assert image.size == IMAGE_SIZE
        assert image.format == "JPEG"


def test_sample_benchmark_scale(tmp_path):
    root = write_mot_sample(tmp_path, sequences=7, frames=760, pedestrians=21)
    total = 0
    for gt_file in (root / "MOT17" / "train").glob("*/gt/gt.txt"):
        total += len(read_ground_truth(gt_file, seq_length=760))
    assert 300_000 < total < 400_000


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"benchmark": "MOT99"}, UnknownNameError, r"unknown benchmark 'MOT99'; valid values are: "
                                                   r"MOT17, MOT20"),
        ({"layout": "zip"}, UnknownNameError, r"unknown layout 'zip'; valid values are: "
                                              r"motchallenge, trackeval"),
        ({"sequences": 8}, ValueError, r"sequences must be from 1 to 7 for MOT17, got 8"),
        ({"benchmark": "MOT20", "sequences": 5}, ValueError, r"from 1 to 4 for MOT20"),
        ({"frames": 1}, ValueError, r"frames must be >= 2 and pedestrians >= 1, got 1 and 8"),
    ],
)
def test_sample_argument_errors(tmp_path, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        write_mot_sample(tmp_path, **kwargs)


@pytest.mark.parametrize("plugin", [MOT17Plugin(), MOT20Plugin()])
def test_generate_sample_plugin(plugin, tmp_path):
    root = plugin.generate_sample(tmp_path / "demo", seed=1)
    assert root == tmp_path / "demo"
    assert (root / SAMPLE_MARKER).is_file()
    assert list(root.glob("MOT*/train/*/img1/000001.jpg"))
    assert list((root / "trackers" / "noisytracker").glob("*.txt"))
    data = plugin.read_source(root)
    assert data.data_kind == "sample"
    assert data.tables["frames"]["train"].num_rows > 0
