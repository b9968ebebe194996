"""Tests of the VIRADA 3D CNN: the C3D network, the clip dataset and ``run virada c3d``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
av = pytest.importorskip("av")

from harness.errors import FieldHarnessError, UnknownNameError  # noqa: E402
from virada.c3d import C3D  # noqa: E402
from virada.torchdata import (  # noqa: E402
    VideoRecord,
    ViradaClips,
    center_crop,
    clip_table,
    random_crop_flip,
)

FRAME_STEP = 6
"""Grey level added per frame in the test videos, so that a frame's mean gives its index."""


@pytest.fixture(autouse=True)
def _one_thread():
    """Run torch on one thread: the tiny networks here are slower with competing threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_video(path: Path, frame_count: int, width: int = 128, height: int = 112) -> Path:
    """Write a lossless video whose frame i is grey level ``FRAME_STEP * i`` (modulo 256)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("ffv1", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "bgr0"
        for index in range(frame_count):
            image = np.full((height, width, 3), FRAME_STEP * index % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def record(path: Path | str = "none.mkv", *, frame_count: int = 40, labels=(0.0,),
           frame_offset: int | None = None, fpm: int = 1800, per_file: bool = False,
           width: int = 128, height: int = 112) -> VideoRecord:
    return VideoRecord(path=Path(path), file_name=Path(path).name, frame_count=frame_count,
                       width=width, height=height, labels=tuple(labels), per_file=per_file,
                       frame_offset=frame_offset, fpm=fpm)


# --- network -----------------------------------------------------------------------------------


def test_c3d_crop_output_shape():
    model = C3D(width=0.125).eval()
    with torch.no_grad():
        output = model(torch.rand(2, 3, 16, 112, 112))
    assert output.shape == (2, 2)
    assert torch.allclose(output.exp().sum(dim=1), torch.ones(2), atol=1e-5)


def test_c3d_published_layer_shapes():
    model = C3D()
    assert model.conv1.weight.shape == (64, 3, 3, 3, 3)
    assert model.conv3b.weight.shape == (256, 256, 3, 3, 3)
    assert model.conv5b.weight.shape == (512, 512, 3, 3, 3)
    assert model.fc6.weight.shape == (4096, 512, 4, 4)
    assert model.fc7.weight.shape == (4096, 4096, 1, 1)
    assert model.fc8.weight.shape == (2, 4096, 1, 1)
    assert model.pool1.kernel_size == (1, 2, 2)
    assert model.pool5.padding == (0, 1, 1)
    assert model.dropout.p == 0.5


def test_c3d_full_frame_averages_positions():
    model = C3D(width=0.125).eval()
    captured = {}
    model.fc8.register_forward_hook(lambda module, inputs, output: captured.update(fc8=output))
    with torch.no_grad():
        output = model(torch.rand(1, 3, 16, 120, 160))
    # 120 x 160 -> 7 x 10 after pool4 -> 4 x 6 after pool5 -> 1 x 3 head positions.
    assert captured["fc8"].shape == (1, 2, 1, 3)
    expected = torch.log_softmax(captured["fc8"], dim=1).mean(dim=(2, 3))
    assert output.shape == (1, 2)
    assert torch.allclose(output, expected, atol=1e-6)


def test_c3d_eval_batch_size_same_result():
    torch.manual_seed(0)
    chunked = C3D(width=0.125, eval_batch_size=2).eval()
    whole = C3D(width=0.125).eval()
    whole.load_state_dict(chunked.state_dict())
    clips = torch.rand(5, 3, 16, 112, 112)
    with torch.no_grad():
        assert torch.allclose(chunked(clips), whole(clips), atol=1e-6)


@pytest.mark.parametrize(("shape", "message"), [
    ((1, 3, 8, 112, 112), "8 frames"),
    ((1, 3, 16, 64, 112), "64 x 112"),
    ((1, 1, 16, 112, 112), "RGB clips"),
])
def test_c3d_rejects_invalid_input(shape, message):
    with pytest.raises(FieldHarnessError, match=message):
        C3D(width=0.125)(torch.rand(*shape))


def test_c3d_rejects_invalid_options():
    with pytest.raises(FieldHarnessError, match="num_classes 1"):
        C3D(num_classes=1)
    with pytest.raises(FieldHarnessError, match=r"width 0; expected a number in \(0, 1\]"):
        C3D(width=0)


# --- clip table --------------------------------------------------------------------------------


@pytest.mark.parametrize(("frame_count", "starts"), [
    (40, [0, 8, 16, 24]),
    (39, [0, 8, 16]),
    (16, [0]),
    (15, []),
])
def test_clip_starts_every_8_frames(frame_count, starts):
    table = clip_table([record(frame_count=frame_count)])
    assert table.start.tolist() == starts


def test_clip_label_is_first_frame_minute():
    # No offset: frames 0..1799 are minute 0. The clip from 1792 spans 1792..1807, across the
    # minute boundary, and takes minute 0's label from its first frame.
    table = clip_table([record(frame_count=1900, labels=(0.0, 1.0))])
    by_start = dict(zip(table.start.tolist(), table.label.tolist(), strict=True))
    assert by_start[1792] == 0
    assert by_start[1800] == 1
    assert table.minute[table.start == 1792].tolist() == [0]


def test_clip_label_with_frame_offset():
    # frameOffset 435: frames 0..435 are minute 0 (the boundary frame 435 gives ceil(0) = 0),
    # frame 436 and later minute 1.
    table = clip_table([record(frame_count=600, labels=(1.0, 0.0), frame_offset=435)])
    by_start = dict(zip(table.start.tolist(), table.label.tolist(), strict=True))
    assert by_start[432] == 1  # spans 432..447, across the offset
    assert by_start[440] == 0


def test_clip_table_minute_ids_and_millimetres():
    videos = [record("a.mkv", frame_count=40, labels=(0.0, 0.2)),
              record("b.mkv", frame_count=24, labels=(0.4,), per_file=True)]
    table = clip_table(videos)
    assert table.video.tolist() == [0, 0, 0, 0, 1, 1]
    assert table.minute_id.tolist() == [0, 0, 0, 0, 2, 2]
    assert table.minute_labels.tolist() == [0, 1, 1]
    assert table.label.tolist() == [0, 0, 0, 0, 1, 1]


# --- transforms --------------------------------------------------------------------------------


def test_random_crop_flip_shape_and_seed():
    frames = np.random.default_rng(0).integers(0, 256, (16, 120, 150, 3), dtype=np.uint8)
    first = random_crop_flip(frames, 112, generator=torch.Generator().manual_seed(3))
    again = random_crop_flip(frames, 112, generator=torch.Generator().manual_seed(3))
    assert first.shape == (16, 112, 112, 3)
    assert np.array_equal(first, again)

    crops = [random_crop_flip(frames, 112, generator=torch.Generator().manual_seed(seed))
             for seed in range(20)]
    assert len({crop.tobytes() for crop in crops}) > 1


def test_random_crop_flip_flips_horizontally():
    frames = np.zeros((16, 112, 112, 3), dtype=np.uint8)
    frames[:, :, 0] = 255  # the crop window is the whole frame, so only the flip changes it
    flipped = [random_crop_flip(frames, 112, generator=torch.Generator().manual_seed(seed))
               for seed in range(20)]
    left_edges = {int(crop[0, 0, 0, 0]) for crop in flipped}
    assert left_edges == {0, 255}
    never = random_crop_flip(frames, 112, flip=False, generator=torch.Generator().manual_seed(0))
    assert never[0, 0, 0, 0] == 255


def test_random_crop_rejects_small_frames():
    with pytest.raises(FieldHarnessError, match="100 x 120 pixels are smaller than the 112"):
        random_crop_flip(np.zeros((16, 100, 120, 3), dtype=np.uint8), 112)


def test_center_crop_uses_untrimmed_centre():
    frames = np.arange(200, dtype=np.int64)[None, None, :, None].repeat(120, axis=1)
    crop = center_crop(frames[:, :, :198], 112, center_width=200)
    assert crop.shape == (1, 112, 112, 1)
    assert crop[0, 0, 0, 0] == 100 - 56


# --- dataset on real videos --------------------------------------------------------------------


@pytest.fixture
def videos(tmp_path) -> list[VideoRecord]:
    first = write_video(tmp_path / "first.mkv", 40)
    second = write_video(tmp_path / "second.mkv", 24)
    return [record(first, frame_count=40, labels=(0.0,)),
            record(second, frame_count=24, labels=(1.0,))]


def _first_frame_index(clip) -> int:
    return round(float(clip[1, 0].mean()) * 255 / FRAME_STEP)


def test_dataset_fcn_items(videos):
    data = ViradaClips(videos, mode="fcn", trim_width=2)
    assert len(data) == 6
    item = data[3]
    assert item["clip"].shape == (3, 16, 112, 126)
    assert item["clip"].dtype == torch.float32
    assert float(item["clip"].min()) >= 0.0
    assert float(item["clip"].max()) <= 1.0
    assert _first_frame_index(item["clip"]) == 24
    assert int(item["target"]) == 0
    assert int(data[5]["target"]) == 1
    assert _first_frame_index(data[5]["clip"]) == 8


def test_dataset_train_items_are_crops(videos):
    data = ViradaClips(videos, mode="train")
    torch.manual_seed(0)
    item = data[1]
    assert item["clip"].shape == (3, 16, 112, 112)
    assert _first_frame_index(item["clip"]) == 8


def test_dataset_rejects_unknown_mode(videos):
    with pytest.raises(UnknownNameError, match="full"):
        ViradaClips(videos, mode="full")


def test_dataset_rejects_small_video(tmp_path):
    small = record(tmp_path / "small.mkv", width=100, height=90)
    with pytest.raises(FieldHarnessError, match=r"small.mkv has 100 x 90 pixel frames"):
        ViradaClips([small], mode="train")


def test_dataloader_workers_match_main_process(videos):
    from torch.utils.data import DataLoader

    data = ViradaClips(videos, mode="fcn", trim_width=2)
    alone = list(DataLoader(data, batch_size=4, num_workers=0))
    forked = list(DataLoader(data, batch_size=4, num_workers=2,
                             multiprocessing_context="fork"))
    assert len(alone) == len(forked) == 2
    for one, other in zip(alone, forked, strict=True):
        assert torch.equal(one["clip"], other["clip"])
        assert torch.equal(one["target"], other["target"])


def test_dataloader_workers_seeded_crops(videos):
    from torch.utils.data import DataLoader

    from harness.training import seed_worker

    data = ViradaClips(videos, mode="train")

    def load():
        loader = DataLoader(data, batch_size=3, num_workers=2, multiprocessing_context="fork",
                            worker_init_fn=seed_worker,
                            generator=torch.Generator().manual_seed(7))
        return torch.cat([batch["clip"] for batch in loader])

    assert torch.equal(load(), load())


# --- run virada c3d ----------------------------------------------------------------------------

TINY = ("--set", "width=0.125")
"""A narrow network, so that the runs below take seconds. Every other value is the sample
preset's. The published network at full width takes about two minutes on 2 CPU cores."""


@pytest.fixture(scope="module")
def sample_source(tmp_path_factory) -> Path:
    from virada.sample import write_virada_sample

    return write_virada_sample(tmp_path_factory.mktemp("virada") / "sample")


def _prepare(source: Path, home: Path) -> Path:
    from harness.prepare import prepare_dataset

    prepare_dataset("virada", source, data_dir=home, progress=False)
    return home


def _read_record(output: Path) -> dict:
    import json

    return json.loads((output / "record.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_run_c3d_on_sample(sample_source, tmp_path):
    import json

    import polars as pl

    from harness.cli import main

    home = _prepare(sample_source, tmp_path / "home")
    output = tmp_path / "run"
    status = main(["run", "virada", "c3d", "--output", str(output), "--data-dir", str(home),
                   *TINY])
    assert status == 0

    predictions = pl.read_csv(output / "test_predictions.csv", separator=";")
    assert predictions.columns == ["pred", "logsoftmax", "filename", "frameStart"]
    test_videos = sorted(path.name for path in (sample_source / "tst").iterdir())
    assert sorted(predictions["filename"].unique().to_list()) == test_videos
    # The sample preset starts a clip every 32 frames; the 720-frame videos have 23 clips.
    assert predictions.height == 23 * len(test_videos)
    assert predictions["frameStart"].to_list()[:3] == [0, 32, 64]
    assert set(predictions["pred"].to_list()) <= {0, 1}
    assert (predictions["logsoftmax"] <= 0).all()

    clips = pl.read_csv(output / "test_clips.csv")
    record = _read_record(output)
    accuracy = float((clips["pred"] == clips["label"]).mean())
    assert record["metrics"]["frame_accuracy"] == pytest.approx(accuracy)
    assert 0.0 <= record["metrics"]["minute_accuracy"] <= 1.0
    assert record["data_kind"] == "sample"
    assert record["config"]["label_source"] == "json"

    summary = json.loads((output / "metrics.json").read_text(encoding="utf-8"))
    assert summary["best_epoch"] == 1
    assert summary["minutes"] == clips["minute_id"].n_unique()
    for name in ("checkpoints/best.pt", "per_minute_curves.png", "test_timeline.png",
                 "per_minute_sweep.csv", "loss.png"):
        assert (output / name).is_file(), name


def test_run_c3d_without_val_split(sample_source, tmp_path, capsys):
    import shutil

    from harness.cli import main

    source = tmp_path / "source"
    shutil.copytree(sample_source, source)
    shutil.rmtree(source / "val")
    home = _prepare(source, tmp_path / "home")
    output = tmp_path / "run"
    status = main(["run", "virada", "c3d", "--output", str(output), "--data-dir", str(home),
                   *TINY, "--set", "clip_stride=128", "--set", "max_steps_per_epoch=1"])
    assert status == 0
    assert "has no val clips, so training runs without validation" in capsys.readouterr().err
    assert _read_record(output)["metrics"]["frame_accuracy"] >= 0.0


def test_run_c3d_rejects_bad_config(sample_source, tmp_path, capsys):
    from harness.cli import main

    home = tmp_path / "home"
    home.mkdir()
    status = main(["run", "virada", "c3d", "--output", str(tmp_path / "missing"),
                   "--data-dir", str(home)])
    assert status == 2
    assert "virada is not prepared" in capsys.readouterr().err

    _prepare(sample_source, home)
    cases = [(("--set", "val_mode=full"), "unknown val_mode 'full'"),
             (("--set", "width=2.0"), "invalid config value width=2.0"),
             (("--set", "crop_size=0"), "invalid config value crop_size=0")]
    for options, message in cases:
        status = main(["run", "virada", "c3d", "--output", str(tmp_path / "bad"),
                       "--data-dir", str(home), *options])
        assert status == 2, options
        assert message in capsys.readouterr().err, options


def test_clips_grouped_by_input_size():
    videos = [record("a.mkv", width=128), record("b.mkv", width=160),
              record("c.mkv", width=128)]
    groups = ViradaClips(videos, mode="fcn", trim_width=2).clips_by_input_size()
    assert sorted(groups) == [(112, 126), (112, 158)]
    assert groups[(112, 126)].tolist() == [0, 1, 2, 3, 8, 9, 10, 11]
    crops = ViradaClips(videos, mode="center_crop", trim_width=2).clips_by_input_size()
    assert list(crops) == [(112, 112)]


def test_val_clips_of_several_sizes_rejected():
    from virada.c3d_baseline import _check_input_sizes

    videos = [record("a.mkv", width=128), record("b.mkv", width=160)]
    opened = {"val": ViradaClips(videos, mode="fcn"), "test": ViradaClips(videos, mode="fcn")}
    with pytest.raises(FieldHarnessError, match=r"several sizes \(112 x 128, 112 x 160\)"):
        _check_input_sizes(opened, {"val_mode": "fcn"})
    opened["val"] = None
    _check_input_sizes(opened, {"val_mode": "fcn"})  # test clips are predicted per size


def test_test_step_predicts_each_size(tmp_path):
    import polars as pl

    from harness.training import TrainSettings
    from virada.c3d_baseline import _test

    narrow = write_video(tmp_path / "narrow.mkv", 24, width=128)
    wide = write_video(tmp_path / "wide.mkv", 24, width=144)
    videos = [record(narrow, frame_count=24, labels=(1.0,)),
              record(wide, frame_count=24, width=144, labels=(0.0,)),
              record(narrow, frame_count=24, labels=(0.0,))]
    data = ViradaClips(videos, mode="fcn", trim_width=2)
    torch.manual_seed(0)
    model = C3D(width=0.125).eval()

    scored, files = _test(model, data, TrainSettings(device="cpu"), {"eval_batch_size": 4},
                          tmp_path)

    predictions = pl.read_csv(tmp_path / "test_predictions.csv", separator=";")
    assert predictions["filename"].to_list() == ["narrow.mkv"] * 2 + ["wide.mkv"] * 2 + [
        "narrow.mkv"] * 2
    with torch.no_grad():
        expected = torch.cat([model(data[i]["clip"][None]) for i in range(len(data))])
    best = expected.max(dim=1)
    assert predictions["pred"].to_list() == best.indices.tolist()
    assert np.allclose(predictions["logsoftmax"].to_numpy(), best.values.numpy(), atol=1e-5)
    assert scored["per_video"]["wide.mkv"]["clips"] == 2
    assert (tmp_path / "test_timeline.png") in files
