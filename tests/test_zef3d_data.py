"""Tests of the 3D-ZeF data: file readers, sample generator, prepare and the plugin's configs."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from harness import registry
from harness.errors import DataFormatError
from harness.plugin import SAMPLE_MARKER
from harness.prepare import prepare_dataset
from zef3d.camera import load_cameras, triangulate
from zef3d.io import (
    GT_COLUMNS,
    find_sequences,
    frame_paths,
    read_gt,
    read_settings,
    read_tracks3d,
    write_tracks3d,
)
from zef3d.plugin import Zef3DPlugin
from zef3d.sample import IMAGE_SIZE, write_zef_sample

FRAMES = 40

GT_LINE = "1,1,19.61,28.313,7.93,1523,1283,1377,1214,156,78,1,1666,961,1438,911,251,85,0"


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return write_zef_sample(tmp_path_factory.mktemp("zef"), frames=FRAMES)


@pytest.fixture
def plugin_registered():
    registry.register_dataset("zef3d", Zef3DPlugin)


def train_dir(sample: Path, name: str = "ZebraFish-01") -> Path:
    return sample / "3DZeF20" / "train" / name


def copy_sequence(sample: Path, tmp_path: Path, name: str = "ZebraFish-01") -> Path:
    target = tmp_path / "3DZeF20" / "train" / name
    shutil.copytree(train_dir(sample, name), target)
    return target


# ----- file readers ------------------------------------------------------------------------


def test_read_gt_official_line(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text(GT_LINE + "\n\n" + GT_LINE.replace("1,1,", "1,2,", 1) + "\n")

    gt = read_gt(path)

    assert gt.columns == list(GT_COLUMNS)
    assert gt.height == 2
    assert gt.schema["frame"] == pl.Int64
    assert gt.schema["top_occlusion"] == pl.Int8
    assert gt.schema["x"] == pl.Float64
    assert gt.row(0) == (1, 1, 19.61, 28.313, 7.93, 1523.0, 1283.0, 1377.0, 1214.0, 156.0,
                         78.0, 1, 1666.0, 961.0, 1438.0, 911.0, 251.0, 85.0, 0)
    assert gt["id"].to_list() == [1, 2]


def test_read_gt_wrong_column_count(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text(GT_LINE + "\n" + GT_LINE.rsplit(",", 1)[0] + "\n")

    with pytest.raises(DataFormatError, match=r"gt.txt:2: line has 18 comma separated fields"):
        read_gt(path)


def test_read_gt_non_numeric_field(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text(GT_LINE.replace(",156,", ",wide,") + "\n")

    with pytest.raises(DataFormatError) as error:
        read_gt(path)
    assert error.value.line == 1
    assert error.value.field == "camT_width"
    assert error.value.value == "wide"
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("replace", "field", "expected"),
    [
        (("1,1,19.61", "0,1,19.61"), "frame", "an integer from 1 to"),
        (("1,1,19.61", "1,1.5,19.61"), "id", "an integer from 1 to"),
        ((",85,0", ",85,2"), "camF_occlusion", "0 or 1"),
        (("7.93", "nan"), "3d_z", "a finite decimal number"),
    ],
)
def test_read_gt_invalid_value(tmp_path, replace, field, expected):
    path = tmp_path / "gt.txt"
    path.write_text(GT_LINE.replace(*replace) + "\n")

    with pytest.raises(DataFormatError, match=expected) as error:
        read_gt(path)
    assert error.value.field == field


def test_read_gt_trailing_comma(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text(GT_LINE + "\n")
    trailing = tmp_path / "trailing.txt"
    trailing.write_text(GT_LINE + ",\r\n")
    spaced = tmp_path / "spaced.txt"
    spaced.write_text(GT_LINE.replace(",", ", ") + "\n")

    assert read_gt(trailing).equals(read_gt(plain))
    assert read_gt(spaced).equals(read_gt(plain))


def test_read_gt_empty_file(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("")

    assert read_gt(path).shape == (0, len(GT_COLUMNS))


def test_read_tracks_separators(tmp_path):
    path = tmp_path / "ZebraFish-01.txt"
    path.write_text("1, 1, 19.61, 28.313, 7.93\n1;2;18.3;28.6;8.9\n2 1 19.6 28.3 7.8 0.9 extra\n")

    tracks = read_tracks3d(path)

    assert tracks.columns == ["frame", "id", "x", "y", "z"]
    assert tracks.rows() == [(1, 1, 19.61, 28.313, 7.93), (1, 2, 18.3, 28.6, 8.9),
                             (2, 1, 19.6, 28.3, 7.8)]


def test_read_tracks_fast_and_line_parsers_agree(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(frame, fish, *rng.uniform(0, 29, 3).tolist()) for frame in range(1, 30)
            for fish in (1, 2)]
    plain = tmp_path / "plain.txt"
    plain.write_text("".join(f"{f},{i},{x!r},{y!r},{z!r}\n" for f, i, x, y, z in rows))
    spaced = tmp_path / "spaced.txt"
    spaced.write_text("".join(f"{f}; {i}; {x!r}; {y!r}; {z!r}\n" for f, i, x, y, z in rows))

    fast = read_tracks3d(plain)

    assert fast.equals(read_tracks3d(spaced))
    assert fast.rows() == [tuple(row) for row in rows]


def test_read_tracks_empty_and_nan(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with_nan = tmp_path / "nan.txt"
    with_nan.write_text("1,1,nan,nan,nan\n2,1,1.0,2.0,3.0\n")

    assert read_tracks3d(empty).height == 0
    assert read_tracks3d(empty).schema["id"] == pl.Int64
    assert read_tracks3d(with_nan).rows() == [(2, 1, 1.0, 2.0, 3.0)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1,1,2.0,3.0", "line has 4 fields"),
        ("1,1,2.0,x,3.0", "value is not a number"),
        ("1,-1,2.0,3.0,4.0", "value is not a positive integer"),
        ("1,1,inf,3.0,4.0", "value is infinite"),
        # Beyond 2**53 an id has no exact float64 value; 2**64 - 1 is read as uint64 by pyarrow.
        ("1,9007199254740993,2.0,3.0,4.0", r"positive integer .*an integer from 1 to"),
        ("1,18446744073709551615,2.0,3.0,4.0", r"positive integer .*an integer from 1 to"),
    ],
)
def test_read_tracks_invalid(tmp_path, line, message):
    path = tmp_path / "tracks.txt"
    path.write_text("1,2,1.0,1.0,1.0\n" + line + "\n")

    with pytest.raises(DataFormatError, match=message) as error:
        read_tracks3d(path)
    assert error.value.line == 2


def test_write_tracks_round_trip(tmp_path):
    tracks = pl.DataFrame({"frame": [1, 2], "id": [3, 3], "x": [0.1, 1.0 / 3.0],
                           "y": [2.5, 2.6], "z": [9.0, 9.25]})
    path = tmp_path / "out.txt"

    write_tracks3d(path, tracks)

    assert path.read_text().splitlines()[0] == "1,3,0.1,2.5,9.0"
    assert read_tracks3d(path).equals(tracks)


def test_write_tracks_missing_column(tmp_path):
    with pytest.raises(KeyError, match="no column 'z'"):
        write_tracks3d(tmp_path / "out.txt", pl.DataFrame({"frame": [1], "id": [1], "x": [0.0],
                                                           "y": [0.0]}))


def test_read_settings_inline_comments(tmp_path):
    path = tmp_path / "settings.ini"
    path.write_text("[DEFAULT]\nn_fish = 2\t# fish in the video\nfps = 60\n\n"
                    "[Aquarium]\naquarium_width = 29.0 # X\n")

    settings = read_settings(path)

    assert settings.getint("DEFAULT", "n_fish") == 2
    assert settings.getfloat("Aquarium", "aquarium_width") == 29.0
    assert settings.getint("Aquarium", "fps") == 60


def test_read_settings_invalid(tmp_path):
    path = tmp_path / "settings.ini"
    path.write_text("n_fish = 2\n")

    with pytest.raises(DataFormatError, match="settings.ini:1: invalid INI file"):
        read_settings(path)


# ----- layout and frames -----------------------------------------------------------------


def test_find_sequences_layouts(sample, tmp_path):
    found = find_sequences(sample)
    flat = tmp_path / "flat"
    shutil.copytree(train_dir(sample), flat / "ZebraFish-01", ignore=shutil.ignore_patterns("img*"))
    shutil.copytree(sample / "3DZeF20" / "test" / "ZebraFish-05", flat / "ZebraFish-05",
                    ignore=shutil.ignore_patterns("img*"))

    assert [p.name for p in found["train"]] == ["ZebraFish-01", "ZebraFish-02"]
    assert [p.name for p in found["test"]] == ["ZebraFish-05"]
    assert find_sequences(sample / "3DZeF20") == found
    assert find_sequences(sample / "3DZeF20" / "train") == {"train": found["train"]}
    assert {split: [p.name for p in paths]
            for split, paths in find_sequences(flat).items()} == {
        "train": ["ZebraFish-01"], "test": ["ZebraFish-05"]}
    assert find_sequences(tmp_path / "nothing") == {}


def test_find_sequences_deep_and_duplicate(sample, tmp_path, caplog):
    deep = tmp_path / "downloads" / "data"
    shutil.copytree(sample / "3DZeF20", deep / "3DZeF20", ignore=shutil.ignore_patterns("img*"))
    shutil.copytree(train_dir(sample), deep / "3DZeF20" / "copy" / "ZebraFish-01",
                    ignore=shutil.ignore_patterns("img*"))

    with caplog.at_level(logging.WARNING, logger="zef3d.io"):
        found = find_sequences(tmp_path)

    assert found["train"] == [deep / "3DZeF20" / "train" / "ZebraFish-01",
                              deep / "3DZeF20" / "train" / "ZebraFish-02"]
    assert "ZebraFish-01 found twice" in caplog.text


def test_frame_paths_order(sample):
    paths = frame_paths(train_dir(sample), "front")

    assert len(paths) == FRAMES
    assert paths[0].name == "000001.jpg"
    assert paths[-1].parent.name == "imgF"


def test_frame_paths_missing_frame(sample, tmp_path):
    seq_dir = copy_sequence(sample, tmp_path)
    (seq_dir / "imgT" / "000007.jpg").unlink()

    with pytest.raises(DataFormatError, match=r"imgT: frame 7 of the top view is missing"):
        frame_paths(seq_dir, "top")


def test_frame_paths_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="frame folder of the front view not found"):
        frame_paths(tmp_path, "front")


def test_frame_paths_shorter_than_sequence(sample):
    with pytest.raises(DataFormatError, match=f"frame {FRAMES + 1} of the top view is missing"):
        frame_paths(train_dir(sample), "top", seq_length=FRAMES + 1)


# ----- sample generator ------------------------------------------------------------------


def test_sample_layout(sample):
    assert (sample / SAMPLE_MARKER).is_file()
    for seq_dir in (train_dir(sample), sample / "3DZeF20" / "test" / "ZebraFish-05"):
        names = {p.name for p in seq_dir.iterdir()}
        assert {"imgT", "imgF", "settings.ini", "camT_intrinsic.json", "camT_references.json",
                "camF_intrinsic.json", "camF_references.json"} <= names
    assert (train_dir(sample) / "gt" / "gt.txt").is_file()
    assert not (sample / "3DZeF20" / "test" / "ZebraFish-05" / "gt").exists()


def test_sample_images(sample):
    import cv2

    image = cv2.imread(str(train_dir(sample) / "imgT" / "000001.jpg"), cv2.IMREAD_GRAYSCALE)

    assert image.shape == (IMAGE_SIZE[1], IMAGE_SIZE[0])
    assert image.min() < 80  # a dark fish on the light background
    assert np.median(image) > 170


def test_sample_gt_matches_cameras(sample):
    seq_dir = train_dir(sample, "ZebraFish-02")
    gt = read_gt(seq_dir / "gt" / "gt.txt")
    cameras = load_cameras(seq_dir)
    heads = gt.select("x", "y", "z").to_numpy()

    for view in ("top", "front"):
        points = gt.select(f"{view}_x", f"{view}_y").to_numpy()
        assert np.abs(cameras[view].project(heads) - points).max() < 1e-5
        left, top, width, height = (gt[f"{view}_{name}"].to_numpy()
                                    for name in ("left", "top", "width", "height"))
        assert np.all(points[:, 0] >= left - 1.5)
        assert np.all(points[:, 0] <= left + width + 0.5)
        assert np.all(points[:, 1] >= top - 1.5)
        assert np.all(points[:, 1] <= top + height + 0.5)

    triangulated, errors = triangulate(cameras["top"], cameras["front"],
                                       gt.select("top_x", "top_y").to_numpy(),
                                       gt.select("front_x", "front_y").to_numpy())
    assert np.abs(triangulated - heads).max() < 1e-4
    assert errors.max() < 1e-4
    for view in ("top", "front"):
        assert gt[f"{view}_left"].min() >= 0
        assert gt[f"{view}_top"].min() >= 0
        assert (gt[f"{view}_left"] + gt[f"{view}_width"]).max() <= IMAGE_SIZE[0]
        assert (gt[f"{view}_top"] + gt[f"{view}_height"]).max() <= IMAGE_SIZE[1]
    assert gt.select(pl.col("frame").max()).item() == FRAMES
    assert gt["id"].n_unique() == 3


def test_sample_crossing_sets_occlusion(sample):
    gt = read_gt(train_dir(sample) / "gt" / "gt.txt")
    middle = gt.filter(pl.col("frame") == FRAMES // 2 + 1).sort("id")
    first = middle.row(0, named=True)
    second = middle.row(1, named=True)
    distance = np.linalg.norm([first[a] - second[a] for a in ("x", "y", "z")])

    assert distance == pytest.approx(1.0, abs=1e-3)
    assert first["top_occlusion"] == 1
    assert second["top_occlusion"] == 1
    assert gt.filter(pl.col("frame") == 1)["top_occlusion"].to_list() == [0, 0]


def test_sample_occlusion_means_box_overlap(sample):
    gt = read_gt(train_dir(sample) / "gt" / "gt.txt")
    for frame in gt.partition_by("frame"):
        boxes = frame.select("top_left", "top_top", "top_width", "top_height").to_numpy()
        for index in range(len(boxes)):
            left, top, width, height = boxes[index]
            others = np.delete(boxes, index, axis=0)
            overlaps = ((np.minimum(left + width, others[:, 0] + others[:, 2])
                         > np.maximum(left, others[:, 0]))
                        & (np.minimum(top + height, others[:, 1] + others[:, 3])
                           > np.maximum(top, others[:, 1])))
            assert frame["top_occlusion"][index] == int(overlaps.any())


def test_sample_is_deterministic(tmp_path):
    def text_files(root: Path) -> dict[str, str]:
        return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*"))
                if p.is_file() and p.suffix != ".jpg"}

    first = write_zef_sample(tmp_path / "a", seed=3, sequences=1, test_sequences=0, frames=6)
    second = write_zef_sample(tmp_path / "b", seed=3, sequences=1, test_sequences=0, frames=6)
    other = write_zef_sample(tmp_path / "c", seed=4, sequences=1, test_sequences=0, frames=6,
                             fish=3)

    assert text_files(first) == text_files(second)
    assert text_files(first) != text_files(other)


def test_sample_settings_keys(sample):
    settings = read_settings(train_dir(sample, "ZebraFish-02") / "settings.ini")

    assert settings.getint("DEFAULT", "n_fish") == 3
    assert settings.getint("DEFAULT", "fps") == 60
    assert settings.getfloat("Aquarium", "aquarium_width") == 29.0
    assert settings.getint("CameraSynchronization", "cam1_length") == FRAMES
    assert settings.get("Detector", "cam1_type") == "skeleton"


def test_sample_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="frames >= 2"):
        write_zef_sample(tmp_path, frames=1)
    with pytest.raises(ValueError, match="fish counts must be >= 1"):
        write_zef_sample(tmp_path, fish=0)


# ----- prepare and load_dataset --------------------------------------------------------------


def test_prepare_and_load_points(sample, plugin_registered):
    from harness import load_dataset

    manifest = prepare_dataset("zef3d", sample, progress=False)
    points = load_dataset("zef3d", split="train").to_polars()

    assert manifest.data_kind == "sample"
    assert manifest.subset
    assert any("ZebraFish-03" in note for note in manifest.notes)
    assert "3DZeF20/train/ZebraFish-01/gt/gt.txt" in manifest.source_files
    assert "3DZeF20/test/ZebraFish-05/camF_references.json" in manifest.source_files
    assert points.columns == ["sequence", "frame", "id", "x", "y", "z", "top_x", "top_y",
                              "top_occlusion", "front_x", "front_y", "front_occlusion"]
    assert points.height == FRAMES * (2 + 3)
    gt = read_gt(train_dir(sample) / "gt" / "gt.txt")
    first = points.filter(pl.col("sequence") == "ZebraFish-01")
    assert np.array_equal(first["x"].to_numpy(), gt["x"].to_numpy())


def test_prepare_sequences_table(sample, plugin_registered):
    from harness import load_dataset

    prepare_dataset("zef3d", sample, progress=False)
    test = load_dataset("zef3d", split="test", config="sequences").to_polars()
    train = load_dataset("zef3d", split="train", config="sequences").to_polars()

    assert test["sequence"].to_list() == ["ZebraFish-05"]
    assert test["has_gt"].to_list() == [False]
    assert train["seq_length"].to_list() == [FRAMES, FRAMES]
    assert train["frame_rate"].to_list() == [60.0, 60.0]
    assert train["top_width"].to_list() == [IMAGE_SIZE[0]] * 2
    assert train["front_height"].to_list() == [IMAGE_SIZE[1]] * 2
    assert Path(train["top_dir"][0]).name == "imgT"
    assert Path(train["front_references"][0]).name == "camF_references.json"
    settings = json.loads(train["settings"][1])
    assert settings["DEFAULT"]["n_fish"] == "3"
    assert settings["Aquarium"] == {"aquarium_width": "29.0", "aquarium_depth": "29.0"}


def test_frames_config_and_verify_find_a_deleted_frame(sample, plugin_registered, tmp_path):
    from harness import load_dataset
    from harness.prepare import verify_dataset

    source = tmp_path / "source"
    shutil.copytree(sample, source)
    prepare_dataset("zef3d", source, progress=False)
    frames = load_dataset("zef3d", split="train", config="frames", format="polars")
    assert frames.height == 2 * 2 * FRAMES  # two sequences, two views
    first = frames.filter((pl.col("sequence") == "ZebraFish-01") & (pl.col("view") == "top"))
    assert first["frame"].to_list() == list(range(1, FRAMES + 1))
    assert Path(first["image"][0]).name == "000001.jpg"
    image = load_dataset("zef3d", split="train", config="frames")[0]["image"]
    assert image.size == IMAGE_SIZE

    assert verify_dataset("zef3d", progress=False).problems == []
    (source / "3DZeF20" / "train" / "ZebraFish-01" / "imgT" / "000030.jpg").unlink()
    problems = verify_dataset("zef3d", progress=False).problems
    assert any("000030.jpg" in problem for problem in problems), problems


def view_as_mot(table: pl.DataFrame, sequence: str):
    from motcom.data import GroundTruth, Tracks

    rows = table.filter(pl.col("sequence") == sequence)
    boxes = rows.select("left", "top", "width", "height").to_numpy()
    frame = rows["frame"].to_numpy().astype(np.int64)
    ids = rows["id"].to_numpy()
    gt = GroundTruth(frame=frame, id=ids, boxes=boxes, flag=rows["flag"].to_numpy(),
                     cls=rows["class"].to_numpy().astype(np.int64),
                     visibility=rows["visibility"].to_numpy())
    tracks = Tracks(frame=frame, id=ids, boxes=boxes, conf=np.ones(len(rows)))
    return gt, tracks


def test_view_boxes_evaluate_with_motchallenge(sample, plugin_registered):
    from harness import load_dataset
    from motcom.evaluation import evaluate_sequence

    prepare_dataset("zef3d", sample, progress=False)
    top = load_dataset("zef3d", split="train", config="top").to_polars()
    gt, tracks = view_as_mot(top, "ZebraFish-01")

    result = evaluate_sequence(gt, tracks, FRAMES, benchmark=None, name="ZebraFish-01")

    assert top.columns == ["sequence", "frame", "id", "left", "top", "width", "height", "flag",
                           "class", "visibility"]
    assert set(top["visibility"].unique().to_list()) == {0.0, 1.0}
    assert result["MOTA"] == 1.0
    assert result["IDSW"] == 0


def test_view_boxes_run_motcom(sample, plugin_registered):
    from harness import load_dataset
    from motcom.complexity import compute_complexity, motcom_ground_truth
    from motcom.data import SequenceInfo

    prepare_dataset("zef3d", sample, progress=False)
    front = load_dataset("zef3d", split="train", config="front").to_polars()
    gt, _ = view_as_mot(front, "ZebraFish-02")
    info = SequenceInfo("ZebraFish-02", FRAMES, 60.0, IMAGE_SIZE[0], IMAGE_SIZE[1], "imgF")

    complexity = compute_complexity(motcom_ground_truth(gt, info), occlusion="boxes")

    assert complexity.sequence == "ZebraFish-02"
    assert 0.0 <= complexity.ocom <= 1.0
    assert 0.0 < complexity.mcom <= 1.0


def test_prepare_views_with_different_frame_counts(sample, tmp_path, plugin_registered):
    seq_dir = copy_sequence(sample, tmp_path)
    (seq_dir / "imgF" / f"{FRAMES:06d}.jpg").unlink()

    with pytest.raises(DataFormatError, match="imgT has 40, imgF has 39"):
        Zef3DPlugin().read_source(tmp_path)


def test_prepare_gt_after_last_frame(sample, tmp_path):
    seq_dir = copy_sequence(sample, tmp_path)
    for view in ("imgT", "imgF"):
        (seq_dir / view / f"{FRAMES:06d}.jpg").unlink()

    with pytest.raises(DataFormatError, match="gt.txt: ground truth has frame 40, after"):
        Zef3DPlugin().read_source(tmp_path)


def test_prepare_duplicate_id_in_frame(sample, tmp_path):
    seq_dir = copy_sequence(sample, tmp_path)
    gt_path = seq_dir / "gt" / "gt.txt"
    lines = gt_path.read_text().splitlines()
    gt_path.write_text("\n".join([*lines, lines[0]]) + "\n")

    with pytest.raises(DataFormatError, match="id 1 appears more than once in frame 1"):
        Zef3DPlugin().read_source(tmp_path)


def test_prepare_bad_calibration_names_file(sample, tmp_path):
    seq_dir = copy_sequence(sample, tmp_path)
    (seq_dir / "camT_intrinsic.json").write_text("{not json")

    with pytest.raises(DataFormatError, match="camT_intrinsic.json:1: invalid JSON"):
        Zef3DPlugin().read_source(tmp_path)


def test_prepare_labels_only(sample, tmp_path):
    seq_dir = copy_sequence(sample, tmp_path)
    for view in ("imgT", "imgF"):
        shutil.rmtree(seq_dir / view)

    data = Zef3DPlugin().read_source(tmp_path)

    assert data.subset
    assert "frame folders not found: 3DZeF20/train/ZebraFish-01/imgT, " \
        "3DZeF20/train/ZebraFish-01/imgF" in data.notes
    sequences = data.tables["sequences"]["train"].to_pylist()
    assert sequences[0]["seq_length"] == FRAMES
    assert sequences[0]["top_dir"] is None
    assert data.data_kind == "real"


def test_prepare_one_view_missing(sample, tmp_path):
    seq_dir = copy_sequence(sample, tmp_path)
    shutil.rmtree(seq_dir / "imgF")

    data = Zef3DPlugin().read_source(tmp_path)
    sequences = data.tables["sequences"]["train"].to_pylist()

    assert data.subset
    assert "frame folders not found: 3DZeF20/train/ZebraFish-01/imgF" in data.notes
    assert sequences[0]["seq_length"] == FRAMES
    assert sequences[0]["top_width"] == IMAGE_SIZE[0]
    assert sequences[0]["front_width"] is None


def test_prepare_nothing_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no 3D-ZeF sequence found"):
        Zef3DPlugin().read_source(tmp_path)


def test_cli_sample_and_prepare(tmp_path, plugin_registered):
    from harness.cli import main

    out = tmp_path / "generated"
    assert main(["sample", "zef3d", "--output", str(out)]) == 0
    assert (out / SAMPLE_MARKER).is_file()
    assert len(frame_paths(out / "3DZeF20" / "train" / "ZebraFish-01", "top")) == 150
    assert main(["prepare", "zef3d", "--source", str(out)]) == 0
