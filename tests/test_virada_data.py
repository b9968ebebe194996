"""VIRADA data: video names, label JSON and the frame to minute rule, decoding, sample, prepare."""

from __future__ import annotations

import datetime
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness import load_dataset, registry
from harness.errors import DataFormatError, FieldHarnessError, UnknownNameError
from harness.plugin import SAMPLE_MARKER
from harness.prepare import prepare_dataset
from virada.labels import (
    VideoLabels,
    check_covers,
    frame_labels,
    frame_offset_for,
    minute_of_frames,
    read_label_json,
    write_label_json,
)
from virada.names import parse_video_name
from virada.plugin import ViradaPlugin
from virada.sample import SAMPLE_LABEL_FILE, SAMPLE_VIDEOS, write_virada_sample
from virada.video import clip_starts, iter_frames, probe, read_clip

BITS = 10
BAR = 16


@pytest.fixture(autouse=True)
def virada_registered() -> Iterator[None]:
    registry.register_dataset("virada", ViradaPlugin)
    yield
    registry._extra[registry.DATASETS_GROUP].pop("virada", None)


# --- names ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("file_name", "crossing", "start", "side", "suffix"), [
    ("20180412_130000-left.mkv", 1, datetime.datetime(2018, 4, 12, 13, 0, 0), "left", "left"),
    ("20180412_235959-right.mp4", 1, datetime.datetime(2018, 4, 12, 23, 59, 59), "right",
     "right"),
    ("20180412_130000-cropRight_2.MKV", 1, datetime.datetime(2018, 4, 12, 13), "right",
     "cropRight_2"),
    ("20180412_130000.mkv", 1, datetime.datetime(2018, 4, 12, 13), None, ""),
    ("6-12-14-cam.mkv", 2, datetime.datetime(2013, 6, 12, 14), None, "cam"),
    ("10-05-09.mp4", 2, datetime.datetime(2013, 10, 5, 9), None, ""),
    ("6-12-14-30-15-cam.mp4", 2, datetime.datetime(2013, 6, 12, 14, 30, 15), None, "cam"),
    ("6-12-14-05-x.mkv", 2, datetime.datetime(2013, 6, 12, 14), None, "05-x"),
])
def test_parse_video_name(file_name: str, crossing: int, start: datetime.datetime,
                          side: str | None, suffix: str) -> None:
    name = parse_video_name(Path("/videos/train") / file_name)
    assert name.crossing == crossing
    assert name.start == start
    assert name.side == side
    assert name.suffix == suffix
    assert name.stem == file_name.rsplit(".", 1)[0]


@pytest.mark.parametrize("file_name", [
    "rain.mkv", "2018041_130000-left.mkv", "20180412-130000-left.mkv", "6_12_14-cam.mkv",
    "20181312_130000-left.mkv", "2-30-14-cam.mkv", "6-12-25-cam.mkv",
])
def test_parse_video_name_invalid(file_name: str) -> None:
    with pytest.raises(DataFormatError, match=rf"^{file_name}: .*Crossing 1 .*Crossing 2"):
        parse_video_name(file_name)


# --- labels ---------------------------------------------------------------------------------

def test_frame_offset_formula() -> None:
    assert frame_offset_for(0, 30) == 0
    assert frame_offset_for(45, 30) == 435  # 15 s left: 450 frames minus half a second
    assert frame_offset_for(59, 30) == 15
    assert frame_offset_for(1, 30) == 1755


def test_minute_of_frames_with_offset() -> None:
    frames = np.array([0, 434, 435, 436, 2235, 2236, 4035, 4036])
    minutes = minute_of_frames(frames, frame_offset=435, fpm=1800, num_labels=10)
    # The boundary frame 435 is minute 0 (ceil(0 / FPM) = 0); the next frame starts minute 1.
    assert minutes.tolist() == [0, 0, 0, 1, 1, 2, 2, 3]


def test_minute_of_frames_without_offset() -> None:
    frames = np.array([0, 1799, 1800, 3599, 3600])
    for offset in (0, None):
        minutes = minute_of_frames(frames, frame_offset=offset, fpm=1800, num_labels=10)
        assert minutes.tolist() == [0, 0, 1, 1, 2]


def test_minute_of_frames_clipped() -> None:
    frames = np.array([0, 1800, 3600, 99_999])
    assert minute_of_frames(frames, frame_offset=0, fpm=1800, num_labels=2).tolist() == [
        0, 1, 1, 1]
    assert minute_of_frames(frames, frame_offset=0, fpm=1800, num_labels=None).tolist() == [
        0, 1, 2, 55]


def test_minute_of_frames_rejects_negative() -> None:
    with pytest.raises(ValueError, match="frame indices must be >= 0"):
        minute_of_frames(np.array([-1]), frame_offset=0, fpm=1800, num_labels=1)


def test_frame_labels_per_minute_and_per_file() -> None:
    entry = VideoLabels(labels=np.array([1.0, 0.0, 1.0]), per_file=False, frame_offset=10,
                        fpm=20)
    frames = np.array([0, 10, 11, 30, 31, 500])
    assert frame_labels(entry, frames).tolist() == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    per_file = VideoLabels(labels=np.array([1.0]), per_file=True, frame_offset=None, fpm=1800)
    assert frame_labels(per_file, frames).tolist() == [1.0] * 6


def test_label_json_round_trip(tmp_path: Path) -> None:
    entries = {
        "a.mp4": VideoLabels(labels=np.array([1.0, 0.0]), per_file=False, frame_offset=615,
                             timestamps=["2018-04-12 11:00:00", "2018-04-12 11:01:00"],
                             frame_count=720, fpm=1800),
        "b.mkv": VideoLabels(labels=np.array([0.25, 0.0]), per_file=False, frame_offset=0,
                             timestamps=["2013-06-12 12:00:00", "2013-06-12 12:01:00"],
                             frame_count=900, fpm=1800),
        "c.mp4": VideoLabels(labels=np.array([1.0]), per_file=True, frame_offset=None,
                             timestamps=[], frame_count=None, fpm=1800),
    }
    path = tmp_path / "labels.json"
    write_label_json(path, entries)
    raw = json.loads(path.read_text())
    assert raw["a.mp4"] == {"FPM": 1800, "frameCount": 720, "frameOffset": 615,
                            "labels": [1, 0],
                            "timestamps": ["2018-04-12 11:00:00", "2018-04-12 11:01:00"]}
    assert raw["b.mkv"]["labels"] == [0.25, 0.0]
    assert raw["c.mp4"]["labels"] == 1.0
    assert isinstance(raw["c.mp4"]["labels"], float)
    assert path.read_text().startswith('{\n    "a.mp4": {\n        "FPM": 1800,')

    back = read_label_json(path)
    assert sorted(back) == ["a.mp4", "b.mkv", "c.mp4"]
    assert back["a.mp4"].labels.tolist() == [1.0, 0.0]
    assert back["a.mp4"].frame_offset == 615
    assert back["b.mkv"].labels.dtype == np.float64
    assert back["c.mp4"].per_file
    assert back["c.mp4"].frame_offset is None


@pytest.mark.parametrize(("entry", "message"), [
    ({"labels": "rain", "FPM": 1800}, r"field 'labels', value \"'rain'\""),
    ({"labels": [], "FPM": 1800}, "field 'labels'"),
    ({"labels": [1, 0]}, "field 'FPM'"),
    ({"labels": [1, 0], "FPM": 1800, "frameOffset": -3}, "field 'frameOffset', value -3"),
    ({"labels": [1, 0], "FPM": 1800, "timestamps": ["2018-04-12 11:00:00"]},
     "field 'timestamps'"),
])
def test_label_json_invalid_entry(tmp_path: Path, entry: dict, message: str) -> None:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"v.mp4": entry}))
    with pytest.raises(DataFormatError, match=rf"labels.json: invalid entry of video 'v.mp4' "
                                              rf"\({message}"):
        read_label_json(path)


def test_label_json_not_json(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    path.write_text('{"v.mp4": {"labels": [1, 0],\n}')
    with pytest.raises(DataFormatError, match=r"labels.json:2: invalid JSON"):
        read_label_json(path)


def test_check_covers() -> None:
    entry = VideoLabels(labels=np.array([1.0, 0.0]), per_file=False, frame_offset=615, fpm=1800)
    check_covers(entry, 2415, "labels.json", video="v.mp4")  # last frame 2414 is minute 1
    with pytest.raises(DataFormatError,
                       match=r"labels.json: the label entry of video 'v.mp4' has 2 minute labels"
                             r", but the video's 2417 frames span 3 minutes"):
        check_covers(entry, 2417, "labels.json", video="v.mp4")
    per_file = VideoLabels(labels=np.array([1.0]), per_file=True, frame_offset=None)
    check_covers(per_file, 10**6, "labels.json", video="v.mp4")


# --- video decoding -------------------------------------------------------------------------

def write_counter_video(path: Path, frames: int) -> None:
    """Encode a video whose frame i shows i in binary as ten black or white bars."""
    import av

    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = BITS * BAR, 48, "yuv420p"
    stream.options = {"crf": "18", "g": "16", "keyint_min": "16", "sc_threshold": "0",
                      "preset": "veryfast"}
    for index in range(frames):
        image = np.zeros((48, BITS * BAR, 3), np.uint8)
        for bit in range(BITS):
            if (index >> bit) & 1:
                image[:, bit * BAR:(bit + 1) * BAR] = 255
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def counter_of(image: np.ndarray) -> int:
    return sum(1 << bit for bit in range(BITS) if image[24, bit * BAR + BAR // 2].mean() > 127)


@pytest.fixture(scope="module")
def counter_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("counter")
    paths = {}
    for extension in ("mp4", "mkv"):
        paths[extension] = folder / f"counter.{extension}"
        write_counter_video(paths[extension], 200)
    return paths


@pytest.mark.parametrize("extension", ["mp4", "mkv"])
def test_probe_counter_video(counter_videos: dict[str, Path], extension: str) -> None:
    info = probe(counter_videos[extension])
    assert info.frame_count == 200
    assert info.fps == 30.0
    assert (info.width, info.height) == (160, 48)


@pytest.mark.parametrize("extension", ["mp4", "mkv"])
def test_read_clip_frame_exact(counter_videos: dict[str, Path], extension: str) -> None:
    path = counter_videos[extension]
    for start in (0, 1, 15, 16, 17, 31, 100, 184):
        clip = read_clip(path, start, 16)
        assert clip.shape == (16, 48, 160, 3)
        assert [counter_of(frame) for frame in clip] == list(range(start, start + 16)), start


def test_iter_frames_range_and_gray(counter_videos: dict[str, Path]) -> None:
    frames = list(iter_frames(counter_videos["mp4"], gray=True, start=190))
    assert len(frames) == 10
    assert frames[0].shape == (48, 160)
    assert frames[0].dtype == np.uint8
    assert [counter_of(np.repeat(f[:, :, None], 3, axis=2)) for f in frames] == list(
        range(190, 200))
    assert len(list(iter_frames(counter_videos["mkv"], start=5, stop=9))) == 4


def test_read_clip_past_end(counter_videos: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="runs past the end"):
        read_clip(counter_videos["mp4"], 190, 16)


def test_clip_starts() -> None:
    assert clip_starts(40, 16, 8).tolist() == [0, 8, 16, 24]
    assert clip_starts(15, 16, 8).tolist() == []


def test_corrupt_videos(counter_videos: dict[str, Path], tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(DataFormatError, match=r"garbage.mp4: cannot open video"):
        probe(garbage)

    for extension in ("mp4", "mkv"):
        data = counter_videos[extension].read_bytes()
        cut = tmp_path / f"cut.{extension}"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(DataFormatError, match=rf"cut.{extension}: "):
            probe(cut)


# --- sample, prepare, load ------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_virada_sample(tmp_path_factory.mktemp("virada") / "sample", seed=0)


def copy_sample(sample_root: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(sample_root, target)
    return target


def test_sample_layout(sample_root: Path) -> None:
    assert (sample_root / SAMPLE_MARKER).is_file()
    names = sorted(p.relative_to(sample_root).as_posix()
                   for p in sample_root.rglob("*") if p.suffix in (".mp4", ".mkv"))
    assert names == sorted(f"{v.split}/{v.file_name}" for v in SAMPLE_VIDEOS)
    size = sum(p.stat().st_size for p in sample_root.rglob("*") if p.is_file())
    assert size < 10 * 2**20
    entries = read_label_json(sample_root / "labels" / SAMPLE_LABEL_FILE)
    assert entries["20180412_130039-left.mp4"].labels.tolist() == [1.0, 0.0]
    assert entries["20180412_130039-left.mp4"].frame_offset == 615
    assert entries["6-12-14-cam.mkv"].frame_offset == 0


def test_sample_rain_visible_only_in_rainy_minute(sample_root: Path) -> None:
    path = sample_root / "train" / "20180412_130039-left.mp4"
    rainy = read_clip(path, 560, 2).astype(int)  # minute 0: rain
    dry = read_clip(path, 660, 2).astype(int)  # minute 1: dry
    assert (np.abs(rainy[0] - rainy[1]).max(axis=2) > 20).mean() > 0.01
    assert (np.abs(dry[0] - dry[1]).max(axis=2) > 20).mean() == 0.0


def test_prepare_sample_and_load(sample_root: Path) -> None:
    manifest = prepare_dataset("virada", sample_root, progress=False)
    assert manifest.data_kind == "sample"
    assert manifest.row_counts["videos/train"] == 5
    assert manifest.row_counts["videos/test"] == 2

    train = load_dataset("virada", split="train", format="polars")
    row = train.filter(train["file_name"] == "20180412_130039-left.mp4").row(0, named=True)
    assert row["crossing"] == 1
    assert row["side"] == "left"
    assert row["frame_count"] == 720
    assert row["labels"] == [1.0, 0.0]
    assert row["frame_offset"] == 615
    assert row["label_source"] == "json"
    assert Path(row["video"]).is_file()

    minutes = load_dataset("virada", split="test", config="minutes", format="polars")
    first = minutes.filter(minutes["stem"] == "20180414_163039-left").sort("minute")
    assert first["first_frame"].to_list() == [0, 616]
    assert first["stop_frame"].to_list() == [616, 720]
    assert first["label"].to_list() == [1.0, 0.0]

    hf = load_dataset("virada", split="tst")
    assert hf.num_rows == 2


def test_prepare_gauges_regenerates_labels(sample_root: Path) -> None:
    shipped = read_label_json(sample_root / "labels" / SAMPLE_LABEL_FILE)
    manifest = prepare_dataset("virada", sample_root, progress=False,
                               options={"gauges": str(sample_root / "gauges")})
    assert f"gauge labels equal those of {SAMPLE_LABEL_FILE} for 9 of 9 videos" in manifest.notes
    videos = load_dataset("virada", format="polars")
    for split_frame in videos.values():
        for row in split_frame.iter_rows(named=True):
            entry = shipped[row["file_name"]]
            assert row["label_source"] == "gauges"
            assert row["labels"] == entry.labels.tolist(), row["file_name"]
            assert row["timestamps"] == entry.timestamps, row["file_name"]
            assert row["frame_offset"] == entry.frame_offset


def test_prepare_gauges_in_millimetres_compared_as_rain(sample_root: Path) -> None:
    manifest = prepare_dataset("virada", sample_root, progress=False,
                               options={"gauges": str(sample_root / "gauges"),
                                        "label_kind": "mm"})
    assert (f"gauge labels equal those of {SAMPLE_LABEL_FILE} for 9 of 9 videos (millimetres "
            "and binary labels compared as rain or no rain)") in manifest.notes
    minutes = load_dataset("virada", split="train", config="minutes", format="polars")
    assert sorted(set(minutes["label"].to_list())) == [0.0, 0.2]  # millimetres, not 0/1


def test_prepare_gauges_far_position(sample_root: Path) -> None:
    # From 56.0 N no sample station is closer than 10 km.
    with pytest.raises(DataFormatError, match=r"no rain gauge closer than 10 km"):
        prepare_dataset("virada", sample_root, progress=False,
                        options={"gauges": str(sample_root / "gauges"), "position": "56.0,9.95"})


def test_prepare_side_left(sample_root: Path) -> None:
    manifest = prepare_dataset("virada", sample_root, progress=False, options={"side": "left"})
    assert manifest.row_counts["videos/train"] == 4
    train = load_dataset("virada", split="train", format="polars")
    assert "right" not in train["side"].to_list()


def test_prepare_invalid_options() -> None:
    with pytest.raises(UnknownNameError, match="side"):
        ViradaPlugin().configure_prepare({"side": "middle"})
    with pytest.raises(FieldHarnessError, match="position='57.05'"):
        ViradaPlugin().configure_prepare({"position": "57.05"})
    with pytest.raises(FieldHarnessError, match=r"position='abc,def' is not valid; expected LAT"):
        ViradaPlugin().configure_prepare({"position": "abc,def"})
    with pytest.raises(FieldHarnessError, match="max_distance_km=-1"):
        ViradaPlugin().configure_prepare({"max_distance_km": "-1"})


def test_prepare_labels_too_short(sample_root: Path, tmp_path: Path) -> None:
    root = copy_sample(sample_root, tmp_path)
    label_path = root / "labels" / SAMPLE_LABEL_FILE
    data = json.loads(label_path.read_text())
    data["20180413_090039-left.mp4"]["labels"] = [0]
    data["20180413_090039-left.mp4"]["timestamps"] = ["2018-04-13 07:00:00"]
    data["6-13-10-cam.mp4"]["labels"] = [1]
    data["6-13-10-cam.mp4"]["timestamps"] = ["2013-06-13 08:00:00"]
    label_path.write_text(json.dumps(data))
    with pytest.raises(DataFormatError,
                       match=rf"{SAMPLE_LABEL_FILE}: the label entry of video "
                             r"'20180413_090039-left.mp4' has 1 minute labels"):
        prepare_dataset("virada", root, progress=False)


def test_prepare_missing_label_entry(sample_root: Path, tmp_path: Path) -> None:
    root = copy_sample(sample_root, tmp_path)
    label_path = root / "labels" / SAMPLE_LABEL_FILE
    data = json.loads(label_path.read_text())
    del data["6-14-11-05-39-cam.mp4"]
    label_path.write_text(json.dumps(data))
    with pytest.raises(DataFormatError, match=r"no label entry for video '6-14-11-05-39-cam.mp4'"):
        prepare_dataset("virada", root, progress=False)


def test_prepare_bad_video_name(sample_root: Path, tmp_path: Path) -> None:
    root = copy_sample(sample_root, tmp_path)
    shutil.copy(root / "val" / "6-13-10-cam.mp4", root / "val" / "rainy-day.mp4")
    with pytest.raises(DataFormatError, match=r"rainy-day.mp4: video name follows neither"):
        prepare_dataset("virada", root, progress=False)


def test_prepare_corrupt_video(sample_root: Path, tmp_path: Path) -> None:
    root = copy_sample(sample_root, tmp_path)
    (root / "tst" / "6-14-11-05-39-cam.mp4").write_bytes(b"\x00" * 4096)
    with pytest.raises(DataFormatError, match=r"6-14-11-05-39-cam.mp4: cannot open video"):
        prepare_dataset("virada", root, progress=False)


def test_prepare_several_label_files(sample_root: Path, tmp_path: Path) -> None:
    root = copy_sample(sample_root, tmp_path)
    shutil.copy(root / "labels" / SAMPLE_LABEL_FILE, root / "labels" / "other.json")
    with pytest.raises(FieldHarnessError, match="several label files"):
        prepare_dataset("virada", root, progress=False)
    manifest = prepare_dataset("virada", root, progress=False,
                               options={"label_file": "other.json"})
    assert manifest.row_counts["videos/val"] == 2


def test_prepare_gauge_options_without_gauges(sample_root: Path) -> None:
    manifest = prepare_dataset("virada", sample_root, progress=False,
                               options={"label_kind": "mm", "clock_offset": "1"})
    assert ("options clock_offset, label_kind apply only with --gauges and were ignored"
            in manifest.notes)
    train = load_dataset("virada", split="train", format="polars")
    assert set(train["label_source"].to_list()) == {"json"}
