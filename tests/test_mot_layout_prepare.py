"""Tests of the MOTChallenge layouts, the MOT17/MOT20 specs and ``read_source``."""

from __future__ import annotations

import logging
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from harness.errors import DataFormatError, EvaluationError
from harness.plugin import SAMPLE_MARKER
from motcom.io import read_ground_truth
from motcom.layout import (
    find_sequences,
    find_tracker_files,
    group_copies,
    read_seqmap,
)
from motcom.plugin import MOT17Plugin, MOT20Plugin
from motcom.sample import write_mot_sample
from motcom.spec import MOT17_SPEC, MOT20_SPEC

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_MOT = SHARED / "realdata" / "mot"

needs_realdata = pytest.mark.skipif(
    not REAL_MOT.is_dir(), reason="real MOTChallenge files not found at ../shared/realdata/mot"
)


@pytest.fixture(scope="module")
def sample17(tmp_path_factory) -> Path:
    return write_mot_sample(tmp_path_factory.mktemp("mot17"), sequences=2, frames=30,
                            pedestrians=5, images=True)


@pytest.fixture(scope="module")
def trackeval17(tmp_path_factory) -> Path:
    return write_mot_sample(tmp_path_factory.mktemp("te17"), sequences=2, frames=30,
                            pedestrians=5, layout="trackeval")


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


# --------------------------------------------------------------------------------------------
# Layouts


def test_find_sequences_archive_layout(sample17):
    found = find_sequences(sample17)
    assert [s.name for s in found] == [
        "MOT17-02-DPM", "MOT17-02-FRCNN", "MOT17-02-SDP",
        "MOT17-04-DPM", "MOT17-04-FRCNN", "MOT17-04-SDP",
    ]
    first = found[0]
    assert first.split == "train"
    assert first.benchmark == "MOT17"
    assert first.base == "MOT17-02"
    assert first.detector == "DPM"
    assert first.gt == first.folder / "gt" / "gt.txt"
    assert first.det == first.folder / "det" / "det.txt"
    assert first.images == first.folder / "img1"
    assert first.seqinfo == first.folder / "seqinfo.ini"


def test_find_sequences_from_split_folder(sample17):
    found = find_sequences(sample17 / "MOT17" / "train")
    assert len(found) == 6
    assert {s.split for s in found} == {"train"}


def test_find_sequences_trackeval_layout(trackeval17):
    found = find_sequences(trackeval17)
    assert len(found) == 6
    assert {s.split for s in found} == {"train"}
    assert {s.benchmark for s in found} == {"MOT17"}
    assert all(s.det is None and s.images is None for s in found)
    seqmap = trackeval17 / "gt" / "mot_challenge" / "seqmaps" / "MOT17-train.txt"
    assert read_seqmap(seqmap) == [s.name for s in found]


def test_find_sequences_follows_symlinks(sample17, tmp_path):
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "MOT17").symlink_to(sample17 / "MOT17", target_is_directory=True)
    found = find_sequences(tmp_path)
    assert len(found) == 6
    assert found[0].folder == tmp_path / "datasets" / "MOT17" / "train" / "MOT17-02-DPM"


def test_find_sequences_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"source folder not found: .*nowhere"):
        find_sequences(tmp_path / "nowhere")


def test_group_copies_identical_gt(sample17, caplog):
    with caplog.at_level(logging.WARNING):
        groups = group_copies(find_sequences(sample17))
    assert [g.name for g in groups] == ["MOT17-02", "MOT17-04"]
    assert groups[0].detectors == ["DPM", "FRCNN", "SDP"]
    assert groups[0].gt_source.name == "MOT17-02-SDP"
    assert groups[0].notes == []
    assert "differs" not in caplog.text


def test_group_copies_edited_copy_warns(sample17, tmp_path, caplog):
    root = copy_tree(sample17 / "MOT17", tmp_path / "MOT17")
    dpm_gt = root / "train" / "MOT17-02-DPM" / "gt" / "gt.txt"
    lines = dpm_gt.read_text().splitlines(keepends=True)
    dpm_gt.write_text("".join(lines[5:]))  # one track shortened, as in the edited public copy

    with caplog.at_level(logging.WARNING):
        groups = group_copies(find_sequences(root))

    assert groups[0].gt == root / "train" / "MOT17-02-SDP" / "gt" / "gt.txt"
    assert "the gt.txt of MOT17-02-DPM differs from MOT17-02-SDP's" in groups[0].notes[0]
    assert "MOT17-02-DPM differs" in caplog.text
    assert groups[1].notes == []


def test_group_copies_prefers_frcnn_without_sdp(sample17, tmp_path):
    root = copy_tree(sample17 / "MOT17", tmp_path / "MOT17")
    shutil.rmtree(root / "train" / "MOT17-02-SDP")
    (root / "train" / "MOT17-02-DPM" / "gt" / "gt.txt").write_text("1,1,1,1,5,5,1,1,1\n")
    groups = group_copies(find_sequences(root))
    assert groups[0].gt_source.name == "MOT17-02-FRCNN"
    assert "MOT17-02-DPM differs from MOT17-02-FRCNN's" in groups[0].notes[0]


def test_find_tracker_files_flat_and_data(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "MOT17-02-SDP.txt").write_text("")
    (flat / "notes.md").write_text("")
    assert list(find_tracker_files(flat)) == ["MOT17-02-SDP"]

    nested = tmp_path / "tracker"
    (nested / "data").mkdir(parents=True)
    (nested / "data" / "MOT20-01.txt").write_text("")
    assert find_tracker_files(nested) == {"MOT20-01": nested / "data" / "MOT20-01.txt"}


def test_find_tracker_files_errors(tmp_path):
    with pytest.raises(EvaluationError, match=r"tracker folder not found: .*missing"):
        find_tracker_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluationError,
                       match=r"no tracker files in .*empty: expected one <sequence>\.txt"):
        find_tracker_files(tmp_path / "empty")


# --------------------------------------------------------------------------------------------
# Specs


@pytest.mark.parametrize("spec", [MOT17_SPEC, MOT20_SPEC])
def test_spec_contract(spec):
    assert spec.license == "CC BY-NC-SA 3.0"
    assert spec.redistributable is False
    assert spec.config().name == "boxes"
    assert spec.config("frames").image_columns == ("image",)
    assert [s.name for s in spec.splits] == ["train", "test"]
    assert spec.split("test").has_labels is False
    version = spec.version()
    assert all(f.md5 is None and f.sha256 is None for f in version.files)
    assert {c.name for c in spec.configs} == {"boxes", "frames", "detections", "sequences"}


def test_spec_facts():
    assert MOT17_SPEC.version().row_counts["boxes/train"] == 204_501
    assert MOT17_SPEC.version().row_counts["frames/train"] == 5_316
    assert "arXiv:1603.00831" in MOT17_SPEC.citation
    assert "arXiv:2003.09003" in MOT20_SPEC.citation
    assert [f.name for f in MOT20_SPEC.version().files] == ["MOT20.zip", "MOT20Labels.zip"]


# --------------------------------------------------------------------------------------------
# read_source


def test_read_source_sample(sample17):
    data = MOT17Plugin().read_source(sample17)

    assert data.version == "1.0"
    assert data.data_kind == "sample"
    assert data.subset is True
    assert any("test: 7 of 7 sequences missing" in note for note in data.notes)
    assert data.source_root == sample17.resolve()

    boxes = data.tables["boxes"]["train"]
    gt = read_ground_truth(sample17 / "MOT17" / "train" / "MOT17-02-SDP" / "gt" / "gt.txt")
    rows02 = boxes.filter(pa.compute.equal(boxes["sequence"], "MOT17-02"))
    assert rows02.num_rows == len(gt)
    assert rows02["id"].to_pylist() == gt.id.tolist()
    assert rows02["class"].to_pylist() == gt.cls.tolist()
    assert set(boxes["sequence"].to_pylist()) == {"MOT17-02", "MOT17-04"}

    sequences = data.tables["sequences"]["train"].to_pylist()
    assert sequences[0]["seq_length"] == 30
    assert sequences[0]["detectors"] == ["DPM", "FRCNN", "SDP"]
    assert sequences[0]["has_gt"] is True
    assert sequences[0]["im_width"] == 640

    detections = data.tables["detections"]["train"]
    assert set(detections["detector"].to_pylist()) == {"DPM", "FRCNN", "SDP"}


def test_read_source_frames_table(sample17):
    data = MOT17Plugin().read_source(sample17)
    frames = data.tables["frames"]["train"]
    boxes = data.tables["boxes"]["train"]

    assert frames.num_rows == 60
    assert frames["frame"].to_pylist()[:3] == [1, 2, 3]
    first = frames.slice(0, 1).to_pylist()[0]
    assert Path(first["image"]).is_absolute()
    assert Path(first["image"]).is_file()
    total = sum(len(ids) for ids in frames["ids"].to_pylist())
    assert total == boxes.num_rows

    frame5 = frames.filter(pa.compute.and_(pa.compute.equal(frames["sequence"], "MOT17-04"),
                                           pa.compute.equal(frames["frame"], 5)))
    row = frame5.to_pylist()[0]
    expected = boxes.filter(pa.compute.and_(pa.compute.equal(boxes["sequence"], "MOT17-04"),
                                            pa.compute.equal(boxes["frame"], 5)))
    assert row["ids"] == expected["id"].to_pylist()
    assert row["boxes"][0] == [expected["left"][0].as_py(), expected["top"][0].as_py(),
                               expected["width"][0].as_py(), expected["height"][0].as_py()]
    assert row["classes"] == expected["class"].to_pylist()


def test_read_source_lists_every_file_read(sample17):
    data = MOT17Plugin().read_source(sample17)
    names = {p.relative_to(sample17.resolve()).as_posix() for p in data.source_files}
    assert "MOT17/train/MOT17-02-DPM/gt/gt.txt" in names
    assert "MOT17/train/MOT17-02-SDP/det/det.txt" in names
    assert "MOT17/train/MOT17-04-FRCNN/seqinfo.ini" in names
    assert len(names) == 18  # 6 copies x (seqinfo.ini, gt.txt, det.txt)
    assert not any(name.endswith(".jpg") or "trackers" in name for name in names)


def test_read_source_trackeval_layout(trackeval17):
    data = MOT17Plugin().read_source(trackeval17)
    assert set(data.tables) == {"boxes", "sequences"}
    assert any("det/det.txt missing in 2 of 2" in note for note in data.notes)
    assert any("images (img1) missing" in note for note in data.notes)


def test_read_source_test_split_without_gt(sample17, tmp_path):
    root = copy_tree(sample17 / "MOT17", tmp_path / "MOT17")
    test_seq = root / "test" / "MOT17-01-SDP"
    test_seq.mkdir(parents=True)
    shutil.copy(root / "train" / "MOT17-02-SDP" / "seqinfo.ini", test_seq / "seqinfo.ini")
    shutil.copytree(root / "train" / "MOT17-02-SDP" / "det", test_seq / "det")

    data = MOT17Plugin().read_source(tmp_path)

    assert "test" not in data.tables["boxes"]
    test_rows = data.tables["sequences"]["test"].to_pylist()
    assert [row["sequence"] for row in test_rows] == ["MOT17-01"]
    assert test_rows[0]["has_gt"] is False
    assert data.tables["detections"]["test"].num_rows > 0
    assert data.data_kind == "real"  # the copy has no sample marker


def test_read_source_mot20_sample(tmp_path):
    root = write_mot_sample(tmp_path, benchmark="MOT20", sequences=2, frames=20, pedestrians=4)
    data = MOT20Plugin().read_source(root)
    sequences = data.tables["sequences"]["train"].to_pylist()
    assert [row["sequence"] for row in sequences] == ["MOT20-01", "MOT20-02"]
    assert sequences[0]["detectors"] == []
    assert set(data.tables["detections"]["train"]["detector"].to_pylist()) == {None}
    assert 6 in data.tables["boxes"]["train"]["class"].to_pylist()


def test_read_source_skips_other_benchmark(sample17):
    with pytest.raises(FileNotFoundError, match=r"no MOT20 sequence found under .*expected"):
        MOT20Plugin().read_source(sample17)


def test_read_source_missing_seqinfo(sample17, tmp_path):
    root = copy_tree(sample17 / "MOT17", tmp_path / "MOT17")
    for copy in ("DPM", "FRCNN", "SDP"):
        (root / "train" / f"MOT17-04-{copy}" / "seqinfo.ini").unlink()
    with pytest.raises(DataFormatError,
                       match=r"MOT17-04-DPM: sequence MOT17-04 has no seqinfo\.ini; expected a "
                             r"seqinfo\.ini with seqLength"):
        MOT17Plugin().read_source(tmp_path)


def test_read_source_seq_length_differs(sample17, tmp_path):
    root = copy_tree(sample17 / "MOT17", tmp_path / "MOT17")
    seqinfo = root / "train" / "MOT17-02-SDP" / "seqinfo.ini"
    seqinfo.write_text(seqinfo.read_text().replace("seqLength=30", "seqLength=31"))
    with pytest.raises(DataFormatError,
                       match=r"MOT17-02-SDP/seqinfo\.ini: seqLength differs between the copies "
                             r"of MOT17-02 \(MOT17-02-DPM: 30\) \(field 'seqLength', value 31\)"):
        MOT17Plugin().read_source(tmp_path)


def test_read_source_bad_gt_line(sample17, tmp_path):
    root = copy_tree(sample17 / "MOT17", tmp_path / "MOT17")
    gt = root / "train" / "MOT17-04-SDP" / "gt" / "gt.txt"
    lines = gt.read_text().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[0] + ",", "31,", 1)
    gt.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError,
                       match=r"MOT17-04-SDP/gt/gt\.txt:4: frame is past the end of the sequence "
                             r"\(30 frames\)"):
        MOT17Plugin().read_source(tmp_path)


def test_read_source_marker_in_parent(sample17):
    assert (sample17 / SAMPLE_MARKER).is_file()
    data = MOT17Plugin().read_source(sample17 / "MOT17" / "train")
    assert data.data_kind == "sample"


@needs_realdata
def test_read_source_real_mot17_subset():
    data = MOT17Plugin().read_source(REAL_MOT / "MOT17")
    assert data.data_kind == "real"
    assert data.subset is True
    boxes = data.tables["boxes"]["train"]
    assert boxes.num_rows == 30003 + 8013 + 10411
    sequences = data.tables["sequences"]["train"].to_pylist()
    assert [row["seq_length"] for row in sequences] == [600, 837, 525]
    assert [row["gt_copy"] for row in sequences] == ["MOT17-02-SDP", "MOT17-05-SDP",
                                                      "MOT17-09-SDP"]
    assert "MOT17-02: detector copies missing (DPM, FRCNN)" in data.notes
    pedestrians = np.asarray(boxes["class"]) == 1
    assert int(pedestrians.sum()) == 18581 + 6917 + 5325


@needs_realdata
def test_read_source_real_mot20():
    data = MOT20Plugin().read_source(REAL_MOT)
    boxes = data.tables["boxes"]["train"]
    assert int((np.asarray(boxes["class"]) == 1).sum()) == 19_870
    assert data.tables["sequences"]["train"]["seq_length"].to_pylist() == [429]


# --------------------------------------------------------------------------------------------
# Zip archives


def zip_folder(folder: Path, archive: Path, prefix: str = "") -> Path:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                handle.write(path, prefix + path.relative_to(folder).as_posix())
    return archive


def test_read_source_zip_in_place(sample17, tmp_path):
    archive = zip_folder(sample17 / "MOT17", tmp_path / "MOT17.zip", prefix="MOT17/")

    data = MOT17Plugin().read_source(tmp_path)

    extracted = MOT17Plugin().read_source(sample17)
    for config in ("boxes", "detections", "sequences"):
        assert data.tables[config]["train"].equals(extracted.tables[config]["train"]), config
    assert "frames" not in data.tables
    assert data.source_files == [archive.resolve()]
    assert any(note.startswith(f"images inside {archive.resolve()} are not listed")
               for note in data.notes)


def test_read_source_labels_zip_without_top_folder(sample17, tmp_path):
    zip_folder(sample17 / "MOT17", tmp_path / "MOT17Labels.zip")
    found = find_sequences(tmp_path)
    assert [s.split for s in found] == ["train"] * 6
    assert {s.benchmark for s in found} == {"MOT17"}
    assert found[0].archive == tmp_path / "MOT17Labels.zip"
    data = MOT17Plugin().read_source(tmp_path)
    assert data.tables["sequences"]["train"].num_rows == 2


def test_zip_error_names_member(sample17, tmp_path):
    root = copy_tree(sample17 / "MOT17", tmp_path / "extracted" / "MOT17")
    gt = root / "train" / "MOT17-02-SDP" / "gt" / "gt.txt"
    lines = gt.read_text().splitlines()
    lines[3] = "-1" + lines[3][lines[3].index(","):]
    gt.write_text("\n".join(lines) + "\n")
    archive = zip_folder(root, tmp_path / "dl" / "MOT17.zip", prefix="MOT17/")
    with pytest.raises(DataFormatError,
                       match=r"dl/MOT17\.zip/MOT17/train/MOT17-02-SDP/gt/gt\.txt:4: frame is "
                             r"below 1"):
        MOT17Plugin().read_source(archive.parent)


def test_disk_folder_preferred_over_zip(sample17, tmp_path, caplog):
    root = copy_tree(sample17 / "MOT17", tmp_path / "MOT17")
    zip_folder(root, tmp_path / "MOT17.zip", prefix="MOT17/")
    with caplog.at_level(logging.WARNING):
        data = MOT17Plugin().read_source(tmp_path)
    assert all(path.suffix != ".zip" for path in data.source_files)
    assert "frames" in data.tables
    assert "MOT17-02-SDP found twice" in caplog.text


def test_unreadable_zip_skipped(sample17, tmp_path, caplog):
    copy_tree(sample17 / "MOT17", tmp_path / "MOT17")
    (tmp_path / "MOT17.zip").write_bytes(b"not a zip")
    with caplog.at_level(logging.WARNING):
        found = find_sequences(tmp_path)
    assert len(found) == 6
    assert "skipping" in caplog.text
    assert "not a readable zip archive" in caplog.text


# --------------------------------------------------------------------------------------------
# Through the core


def test_prepare_round_trip(sample17, tmp_path):
    prepare = pytest.importorskip("harness.prepare")
    from harness.storage import read_manifest, read_prepared_table

    manifest = prepare.prepare_dataset("mot17", sample17, data_dir=tmp_path, progress=False)

    assert manifest.data_kind == "sample"
    assert manifest.subset is True
    assert read_manifest("mot17", data_dir=tmp_path).version == "1.0"
    boxes = read_prepared_table("mot17", "boxes", "train", data_dir=tmp_path)
    direct = MOT17Plugin().read_source(sample17).tables["boxes"]["train"]
    assert boxes.equals(direct)
    frames = read_prepared_table("mot17", "frames", "train", data_dir=tmp_path,
                                 columns=["image", "boxes"])
    assert frames.num_rows == 60
    assert Path(frames["image"][0].as_py()).is_file()
    assert "MOT17/train/MOT17-02-SDP/gt/gt.txt" in manifest.source_files
