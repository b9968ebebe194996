"""Sewer-ML torch input: water-level bins, SewerMLImages, transforms, hf_transform, mean/std."""

from __future__ import annotations

import csv
import logging
import os
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from harness import imagestore, load_dataset, registry
from harness.errors import DataFormatError, FieldHarnessError, UnknownNameError
from harness.prepare import prepare_dataset
from harness.registry import register_dataset
from sewerml import sample, torchdata
from sewerml import tasks as sewerml_tasks
from sewerml.classes import DEFECT_CODES
from sewerml.plugin import SewerMLPlugin
from sewerml.sample import IMAGE_SIZES, write_sewerml_sample
from sewerml.torchdata import (
    IGNORE_INDEX,
    TASK_CLASSES,
    ImageNotFoundError,
    SewerMLImages,
    bin_water_level,
    compute_mean_std,
    hf_transform,
)
from sewerml.transforms import SEWERML_MEAN, SEWERML_STD, eval_transform, train_transform

IMAGES = 6
SIZE = 32
LAYOUTS = ("flat", "folders", "zip")


@pytest.fixture(autouse=True)
def sewerml_registered() -> Iterator[None]:
    register_dataset("sewerml", SewerMLPlugin)
    yield
    registry._extra[registry.DATASETS_GROUP].pop("sewerml", None)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Prepare one sample per layout, each in its own data home; Shape and Material columns
    in every layout but ``folders``."""
    register_dataset("sewerml", SewerMLPlugin)
    copies = {}
    for layout in LAYOUTS:
        base = tmp_path_factory.mktemp(layout)
        root = write_sewerml_sample(base / "src", layout=layout, images_per_split=IMAGES,
                                    properties=layout != "folders")
        prepare_dataset("sewerml", root, data_dir=base / "home", progress=False)
        copies[layout] = (root, base / "home")
    registry._extra[registry.DATASETS_GROUP].pop("sewerml", None)
    return copies


def fresh_copy(tmp_path: Path, layout: str) -> Path:
    """Write and prepare a small sample in the test's own data home."""
    root = write_sewerml_sample(tmp_path / "src", layout=layout, images_per_split=2)
    prepare_dataset("sewerml", root, progress=False)
    return root


def images(layout: str, prepared: dict[str, tuple[Path, Path]], split: str = "train",
           **kwargs: object) -> SewerMLImages:
    kwargs.setdefault("transform", eval_transform(SIZE))
    return SewerMLImages(split, data_dir=prepared[layout][1], **kwargs)


def csv_rows(root: Path, split: str) -> list[dict[str, str]]:
    name = {"train": "SewerML_Train.csv", "val": "SewerML_Val.csv"}[split]
    with (root / name).open(newline="") as handle:
        return list(csv.DictReader(handle))


def expected_bin(level: float) -> int:
    if level < 5:
        return 0
    if level < 15:
        return 1
    if level < 30:
        return 2
    return 3


# --- tasks and water-level bins ---------------------------------------------------------------


def test_bin_water_level_edges() -> None:
    levels = [0, 4.9, 5, 14.99, 15, 29.9, 30, 100]
    assert bin_water_level(levels).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert bin_water_level(levels).dtype == np.int64
    assert bin_water_level(15.0).shape == ()
    assert int(bin_water_level(15.0)) == 2


@pytest.mark.parametrize("bad", [float("nan"), -1.0, 100.5])
def test_bin_water_level_invalid(bad: float) -> None:
    with pytest.raises(DataFormatError, match=r"invalid water level at index 1 \(field "
                       r"'WaterLevel', value .*\); expected a percentage from 0 to 100"):
        bin_water_level([10.0, bad, 20.0])


def test_task_classes() -> None:
    assert {task: len(classes) for task, classes in TASK_CLASSES.items()} == {
        "defect": 17, "water": 4, "shape": 6, "material": 8}
    assert TASK_CLASSES["water"] == ("0%<5%", "5-15%", "15-30%", "30%<=")
    assert torchdata.WATER_LEVEL_EDGES == (5.0, 15.0, 30.0)
    assert IGNORE_INDEX == torch.nn.CrossEntropyLoss().ignore_index


def test_tasks_module_is_torch_free() -> None:
    code = ("import sys, sewerml.tasks, sewerml.sample; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60)
    assert result.stdout.strip() == "[]"
    assert torchdata.bin_water_level is sewerml_tasks.bin_water_level


# --- SewerMLImages ----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("split", ["train", "val"])
def test_items_match_csv(prepared: dict[str, tuple[Path, Path]], layout: str,
                         split: str) -> None:
    dataset = images(layout, prepared, split)
    rows = csv_rows(prepared[layout][0], split)
    assert dataset.filenames == [row["Filename"] for row in rows]
    assert len(dataset) == IMAGES
    assert dataset.has_labels
    with_properties = layout != "folders"
    assert dataset.tasks == (("defect", "water", "shape", "material") if with_properties
                             else ("defect", "water"))

    for index, row in enumerate(rows):
        item = dataset[index]
        assert item["index"] == index
        assert item["image"].shape == (3, SIZE, SIZE)
        assert item["image"].dtype == torch.float32
        assert item["defect"].dtype == torch.float32
        assert item["defect"].tolist() == [float(row[code]) for code in DEFECT_CODES]
        assert item["binary"].tolist() == [float(row["Defect"])]
        assert item["water"].dtype == torch.int64
        assert item["water"].shape == ()
        assert int(item["water"]) == expected_bin(float(row["WaterLevel"]))
        for task, column in (("shape", "Shape"), ("material", "Material")):
            expected = int(row[column]) if with_properties else IGNORE_INDEX
            assert int(item[task]) == expected, (task, index)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_targets_arrays(prepared: dict[str, tuple[Path, Path]], layout: str) -> None:
    dataset = images(layout, prepared)
    rows = csv_rows(prepared[layout][0], "train")
    targets = dataset.targets
    assert targets["defect"].dtype == np.int8
    assert targets["defect"].shape == (IMAGES, 17)
    assert targets["binary"].dtype == np.int8
    assert targets["binary"].tolist() == [int(row["Defect"]) for row in rows]
    for task in ("water", "shape", "material"):
        assert targets[task].dtype == np.int64
        assert targets[task].shape == (IMAGES,)


def test_test_split_has_no_labels(prepared: dict[str, tuple[Path, Path]]) -> None:
    dataset = images("zip", prepared, "test")
    assert not dataset.has_labels
    assert dataset.tasks == ()
    assert dataset.targets == {}
    assert set(dataset[0]) == {"image", "index"}
    with pytest.raises(FieldHarnessError, match="split 'test' has no labels to count"):
        dataset.label_counts()
    with pytest.raises(FieldHarnessError, match="defect_only=True needs labels, but split "
                       "'test' has none"):
        images("zip", prepared, "test", defect_only=True)


def test_defect_only(prepared: dict[str, tuple[Path, Path]]) -> None:
    dataset = images("folders", prepared, defect_only=True)
    rows = csv_rows(prepared["folders"][0], "train")
    assert dataset.filenames == [row["Filename"] for row in rows if row["Defect"] == "1"]
    assert 0 < len(dataset) < IMAGES
    assert dataset.targets["binary"].tolist() == [1] * len(dataset)
    assert all(dataset[i]["binary"].item() == 1.0 for i in range(len(dataset)))


def test_label_counts(prepared: dict[str, tuple[Path, Path]]) -> None:
    dataset = images("zip", prepared)
    rows = csv_rows(prepared["zip"][0], "train")
    counts = dataset.label_counts()
    assert counts["defect"].tolist() == [sum(int(row[code]) for row in rows)
                                         for code in DEFECT_CODES]
    assert counts["binary"].tolist() == [sum(int(row["Defect"]) for row in rows)]
    water = np.bincount([expected_bin(float(row["WaterLevel"])) for row in rows], minlength=4)
    assert counts["water"].tolist() == water.tolist()
    assert counts["shape"].tolist() == np.bincount([int(row["Shape"]) for row in rows],
                                                   minlength=6).tolist()
    assert counts["material"].tolist() == np.bincount([int(row["Material"]) for row in rows],
                                                      minlength=8).tolist()
    assert "shape" not in images("folders", prepared).label_counts()


def test_index_bounds(prepared: dict[str, tuple[Path, Path]]) -> None:
    dataset = images("flat", prepared)
    assert dataset[-1]["index"] == IMAGES - 1
    with pytest.raises(IndexError, match=f"index {IMAGES} is out of range for {IMAGES} images"):
        dataset[IMAGES]


def test_location_per_layout(prepared: dict[str, tuple[Path, Path]]) -> None:
    for layout in LAYOUTS:
        root = prepared[layout][0]
        location = images(layout, prepared).location(0)
        assert location.startswith(str(root) + "/")
        assert ("::" in location) == (layout == "zip")


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers_over_zip(prepared: dict[str, tuple[Path, Path]],
                                     context: str) -> None:
    dataset = images("zip", prepared)
    expected = [dataset[i] for i in range(len(dataset))]  # opens the archives in this process
    workers = 2 if context == "fork" else 1  # a spawned worker takes seconds to import torch
    loader = DataLoader(dataset, batch_size=4, num_workers=workers,
                        multiprocessing_context=context)
    batches = list(loader)
    assert [len(batch["index"]) for batch in batches] == [4, 2]
    images_out = torch.cat([batch["image"] for batch in batches])
    assert torch.equal(images_out, torch.stack([item["image"] for item in expected]))
    water = torch.cat([batch["water"] for batch in batches])
    assert water.tolist() == [int(item["water"]) for item in expected]
    assert batches[0]["defect"].shape == (4, 17)
    assert batches[0]["binary"].shape == (4, 1)


def test_zip_archives_opened_once(prepared: dict[str, tuple[Path, Path]],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    original = zipfile.ZipFile

    class CountingZipFile(original):  # type: ignore[misc, valid-type]
        def __init__(self, file: str, *args: object, **kwargs: object) -> None:
            opened.append(str(file))
            super().__init__(file, *args, **kwargs)

    monkeypatch.setattr(zipfile, "ZipFile", CountingZipFile)
    dataset = images("zip", prepared)
    for _ in range(2):
        for index in range(len(dataset)):
            dataset.load_image(index)
    assert sorted(Path(path).name for path in opened) == ["train00.zip", "train01.zip"]

    # A process with another id (a forked worker) opens its own handles.
    other_pid = os.getpid() + 1
    monkeypatch.setattr(imagestore.os, "getpid", lambda: other_pid)
    dataset.load_image(0)
    assert len(opened) == 3


def test_pickle_leaves_out_open_archives(prepared: dict[str, tuple[Path, Path]]) -> None:
    dataset = images("zip", prepared)
    first = dataset[0]["image"]
    assert dataset._images._archives
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy._images._archives == {}
    assert torch.equal(copy[0]["image"], first)
    dataset.close()
    assert dataset._images._archives == {}
    assert torch.equal(dataset[0]["image"], first)


def test_missing_zip_member(tmp_path: Path) -> None:
    root = fresh_copy(tmp_path, "zip")
    archive = root / "train00.zip"
    with zipfile.ZipFile(archive) as handle:
        members = {name: handle.read(name) for name in handle.namelist()}
    dropped = sorted(members)[0]
    with zipfile.ZipFile(archive, "w") as handle:
        for name, data in members.items():
            if name != dropped:
                handle.writestr(name, data)

    dataset = SewerMLImages("train", transform=eval_transform(SIZE))
    index = dataset.filenames.index(dropped)
    with pytest.raises(ImageNotFoundError, match=rf"member {dropped} of {dropped} not found in "
                       rf"zip archive .*train00\.zip; prepare sewerml again"):
        dataset[index]


def test_missing_zip_archive(tmp_path: Path) -> None:
    root = fresh_copy(tmp_path, "zip")
    (root / "train00.zip").unlink()
    dataset = SewerMLImages("train", transform=eval_transform(SIZE))
    with pytest.raises(ImageNotFoundError, match=r"zip archive .*train00\.zip not found"):
        dataset[0]


def test_missing_image_file(tmp_path: Path) -> None:
    root = fresh_copy(tmp_path, "folders")
    dataset = SewerMLImages("val", transform=eval_transform(SIZE))
    name = dataset.filenames[1]
    (root / "Val" / name).unlink()
    with pytest.raises(ImageNotFoundError,
                       match=rf"image file .*Val/{name} of {name} not found"):
        dataset[1]
    with pytest.raises(FileNotFoundError):
        dataset[1]


def test_unreadable_image(tmp_path: Path) -> None:
    root = fresh_copy(tmp_path, "flat")
    dataset = SewerMLImages("train", transform=eval_transform(SIZE))
    name = dataset.filenames[0]
    (root / name).write_bytes(b"not a png")
    with pytest.raises(DataFormatError, match=rf"{name}: failed to decode image {name}; "
                       "expected a PNG image"):
        dataset[0]


def test_not_a_zip_archive(tmp_path: Path) -> None:
    root = fresh_copy(tmp_path, "zip")
    (root / "train00.zip").write_bytes(b"garbage")
    dataset = SewerMLImages("train", transform=eval_transform(SIZE))
    with pytest.raises(DataFormatError, match=r"train00\.zip: invalid zip archive"):
        dataset[0]


def test_frame_argument_and_null_images(prepared: dict[str, tuple[Path, Path]],
                                        caplog: pytest.LogCaptureFixture) -> None:
    frame = load_dataset("sewerml", split="train", format="polars",
                         data_dir=prepared["flat"][1])
    first = frame["Filename"][0]
    frame = frame.with_columns(
        pl.when(pl.col("Filename") == first).then(None).otherwise(pl.col("image")).alias("image"))
    with caplog.at_level(logging.WARNING, logger="sewerml.torchdata"):
        dataset = SewerMLImages("train", frame=frame, transform=eval_transform(SIZE))
    assert dataset.filenames == frame["Filename"].to_list()[1:]
    assert f"1 images were not found at prepare time and are left out (first: {first})" \
        in caplog.text


def test_frame_errors(prepared: dict[str, tuple[Path, Path]]) -> None:
    data_dir = prepared["zip"][1]
    frame = load_dataset("sewerml", split="train", format="polars", data_dir=data_dir)
    first = frame["Filename"][0]

    with pytest.raises(DataFormatError, match=r"missing column\(s\) in the labels frame: image"):
        SewerMLImages(frame=frame.drop("image"))

    low = frame.with_columns(pl.when(pl.col("Filename") == first).then(-1.0)
                             .otherwise(pl.col("WaterLevel")).alias("WaterLevel"))
    with pytest.raises(DataFormatError, match=rf"invalid water level of image {first} \(field "
                       r"'WaterLevel', value -1\.0\); expected a percentage from 0 to 100"):
        SewerMLImages(frame=low)

    shape = frame.with_columns(pl.lit(9, dtype=pl.Int8).alias("Shape"))
    with pytest.raises(DataFormatError, match=rf"invalid Shape code of image {first} .*value 9"
                       r"\); expected an integer from 0 to 5"):
        SewerMLImages(frame=shape)

    mixed = load_dataset("sewerml", split="train+test", format="polars", data_dir=data_dir)
    with pytest.raises(DataFormatError, match=f"{IMAGES} of {2 * IMAGES} images have no labels"):
        SewerMLImages(frame=mixed)

    with pytest.raises(FieldHarnessError, match="split 'train' has no images to load with "
                       "Defect == 1"):
        SewerMLImages(frame=frame.with_columns(pl.lit(0, dtype=pl.Int8).alias("Defect")),
                      defect_only=True)


# --- transforms -------------------------------------------------------------------------------


def test_eval_transform_mean_colour_is_zero() -> None:
    colour = tuple(round(value * 255) for value in SEWERML_MEAN)
    image = Image.new("RGB", (40, 30), colour)
    output = eval_transform(16)(image)
    assert output.shape == (3, 16, 16)
    assert output.dtype == torch.float32
    assert output.abs().max().item() < 0.02


def test_eval_transform_scales_by_std() -> None:
    white = eval_transform(8)(Image.new("RGB", (20, 20), (255, 255, 255)))
    expected = [(1 - mean) / std for mean, std in zip(SEWERML_MEAN, SEWERML_STD, strict=True)]
    assert white[:, 0, 0].tolist() == pytest.approx(expected, rel=1e-5)
    assert eval_transform(299)(Image.new("RGB", (350, 284))).shape == (3, 299, 299)


def test_train_transform_seeded(prepared: dict[str, tuple[Path, Path]]) -> None:
    image = images("flat", prepared).load_image(0)
    transform = train_transform(SIZE)
    outputs = []
    for seed in (0, 0, 1, 2, 3):
        torch.manual_seed(seed)
        outputs.append(transform(image))
    assert outputs[0].shape == (3, SIZE, SIZE)
    assert torch.equal(outputs[0], outputs[1])
    assert any(not torch.equal(outputs[0], other) for other in outputs[2:])
    assert not torch.equal(outputs[0], eval_transform(SIZE)(image))


def test_transform_arguments_invalid() -> None:
    with pytest.raises(FieldHarnessError, match="image_size is 0; expected a positive number"):
        train_transform(0)
    with pytest.raises(FieldHarnessError, match=r"must have 3 values each"):
        eval_transform(224, mean=(0.5, 0.5))
    with pytest.raises(FieldHarnessError, match=r"has a value <= 0"):
        eval_transform(224, std=(0.2, 0.0, 0.2))


# --- hf_transform -----------------------------------------------------------------------------


def test_hf_transform_dataloader(prepared: dict[str, tuple[Path, Path]]) -> None:
    data_dir = prepared["zip"][1]
    dataset = load_dataset("sewerml", split="val", data_dir=data_dir)
    dataset.set_transform(hf_transform(eval_transform(SIZE)))
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    reference = images("zip", prepared, "val")

    assert batch["Filename"] == reference.filenames[:4]
    assert batch["image"].shape == (4, 3, SIZE, SIZE)
    assert torch.allclose(batch["image"][0], reference[0]["image"], atol=1e-6)
    assert batch["defect"].tolist() == reference.targets["defect"][:4].astype(float).tolist()
    assert batch["binary"].shape == (4, 1)
    assert batch["water"].dtype == torch.int64
    assert batch["water"].tolist() == reference.targets["water"][:4].tolist()
    assert batch["shape"].tolist() == reference.targets["shape"][:4].tolist()
    assert batch["material"].tolist() == reference.targets["material"][:4].tolist()


def test_hf_transform_tasks_and_test_split(prepared: dict[str, tuple[Path, Path]]) -> None:
    data_dir = prepared["folders"][1]
    train = load_dataset("sewerml", split="train", data_dir=data_dir)
    train.set_transform(hf_transform(eval_transform(SIZE), tasks=["defect"]))
    assert set(train[0]) == {"image", "Filename", "defect", "binary"}

    train.set_transform(hf_transform(eval_transform(SIZE)))
    assert int(train[0]["shape"]) == IGNORE_INDEX

    test = load_dataset("sewerml", split="test", data_dir=data_dir)
    test.set_transform(hf_transform(eval_transform(SIZE)))
    assert set(test[0]) == {"image", "Filename"}
    test.set_transform(hf_transform(eval_transform(SIZE), tasks=["water"]))
    with pytest.raises(DataFormatError, match=r"image .*\.png has no labels"):
        test[0]

    with pytest.raises(UnknownNameError, match="unknown task 'colour'"):
        hf_transform(eval_transform(SIZE), tasks=["colour"])


# --- normalisation statistics -----------------------------------------------------------------


def numpy_mean_std(dataset: SewerMLImages, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    pixels = np.concatenate([
        np.asarray(Image.open(dataset.location(i)) if "::" not in dataset.location(i)
                   else dataset.load_image(i), dtype=np.float64).reshape(-1, 3) / 255.0
        for i in indices
    ])
    return pixels.mean(axis=0), pixels.std(axis=0)


def test_compute_mean_std(prepared: dict[str, tuple[Path, Path]]) -> None:
    dataset = images("folders", prepared)
    mean, std = compute_mean_std(dataset, progress=False)
    expected_mean, expected_std = numpy_mean_std(dataset, list(range(IMAGES)))
    assert mean == pytest.approx(expected_mean.tolist(), abs=1e-9)
    assert std == pytest.approx(expected_std.tolist(), abs=1e-9)

    mean, std = compute_mean_std(dataset, max_images=2, progress=False)
    expected_mean, expected_std = numpy_mean_std(dataset, [0, IMAGES - 1])
    assert mean == pytest.approx(expected_mean.tolist(), abs=1e-9)
    assert std == pytest.approx(expected_std.tolist(), abs=1e-9)


def test_compute_mean_std_invalid(prepared: dict[str, tuple[Path, Path]]) -> None:
    with pytest.raises(FieldHarnessError, match="max_images is 0; expected at least 1"):
        compute_mean_std(images("flat", prepared), max_images=0)
    with pytest.raises(FieldHarnessError, match="needs a dataset with load_image.*got list"):
        compute_mean_std([Image.new("RGB", (2, 2))])  # type: ignore[arg-type]


# --- sample images ----------------------------------------------------------------------------


def test_sample_images_have_real_sizes(prepared: dict[str, tuple[Path, Path]]) -> None:
    sizes = set()
    for layout in LAYOUTS:
        dataset = images(layout, prepared)
        sizes |= {dataset.load_image(i).size for i in range(len(dataset))}
    assert sizes <= set(IMAGE_SIZES)
    assert len(sizes) > 1


def test_sample_pixels_show_labels(prepared: dict[str, tuple[Path, Path]]) -> None:
    dataset = images("flat", prepared)
    rows = csv_rows(prepared["flat"][0], "train")
    for index, row in enumerate(rows):
        pixels = np.asarray(dataset.load_image(index), dtype=np.int16)
        # Defect marks are saturated colours; the pipe scene and water are dull.
        saturation = pixels.max(axis=2) - pixels.min(axis=2)
        assert (saturation > 150).any() == (row["Defect"] == "1"), row["Filename"]


def render(defects: tuple[int, ...] = (), water_level: int = 0) -> np.ndarray:
    labels = np.zeros(len(DEFECT_CODES), dtype=int)
    labels[list(defects)] = 1
    scene = sample._Scene(size=(480, 576), defects=labels, water_level=water_level, shape=0,
                          material=1)
    return sample._render(scene, np.random.default_rng(0)).astype(np.int16)


def test_sample_water_band_follows_level() -> None:
    dry = render()
    for level in (5, 30, 50):
        rows = np.flatnonzero((render(water_level=level) != dry).any(axis=(1, 2)))
        assert rows.max() == dry.shape[0] - 1
        assert rows.min() / dry.shape[0] == pytest.approx(1 - level / 100, abs=0.01)


def test_sample_marks_differ_per_class() -> None:
    plain = render()
    centres = set()
    for code_index in range(len(DEFECT_CODES)):
        changed = np.argwhere((render((code_index,)) != plain).any(axis=2))
        assert len(changed) > 100, DEFECT_CODES[code_index]
        centres.add(tuple((changed.mean(axis=0) // 10).astype(int)))
    assert len(centres) == len(DEFECT_CODES)
