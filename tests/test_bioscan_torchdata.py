"""BIOSCAN torch input pipeline: items, targets in both index spaces, BIOSCAN-1M partitions,
DataLoader workers, zip archives, transforms and errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from bioscan.dna import KmerTokenizer, deduplicate_barcodes
from bioscan.labels import MISSING_INDEX
from bioscan.plugin import BIOSCAN5MPlugin
from bioscan.plugin1m import BIOSCAN1MPlugin
from bioscan.sample1m import write_bioscan1m_sample
from bioscan.sample5m import write_bioscan5m_sample
from bioscan.spec import CSV_RELATIVE_PATH
from bioscan.torchdata import BIOSCANDataset
from bioscan.transforms import BIOSCAN5M_MEAN, NORMALIZATIONS, image_transform
from harness import load_dataset, registry
from harness.errors import FieldHarnessError, UnknownNameError
from harness.imagestore import ImageNotFoundError
from harness.prepare import prepare_dataset
from harness.registry import register_dataset

SIZE = 32


@pytest.fixture(autouse=True)
def bioscan_registered() -> Iterator[None]:
    register_dataset("bioscan-5m", BIOSCAN5MPlugin)
    register_dataset("bioscan-1m", BIOSCAN1MPlugin)
    yield
    for name in ("bioscan-5m", "bioscan-1m"):
        registry._extra[registry.DATASETS_GROUP].pop(name, None)


@pytest.fixture(scope="module")
def sample5m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 records, images for 300 of them, in folders."""
    return write_bioscan5m_sample(tmp_path_factory.mktemp("b5m") / "folders", rows=400, seed=5,
                                  images=300)


@pytest.fixture(scope="module")
def sample5m_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bioscan5m_sample(tmp_path_factory.mktemp("b5mzip") / "zip", rows=120, seed=6,
                                  layout="zip")


@pytest.fixture(scope="module")
def sample1m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bioscan1m_sample(tmp_path_factory.mktemp("b1m") / "s", rows=600, images=600)


def prepared(root: Path, name: str = "bioscan-5m") -> Path:
    prepare_dataset(name, root, progress=False)
    return root


def small_transform():
    return image_transform("eval", size=SIZE, resize=SIZE)


# --- items and targets ------------------------------------------------------------------------


def test_items_have_every_modality_and_target(sample5m: Path) -> None:
    prepared(sample5m)
    tokenizer = KmerTokenizer(4, max_length=170, pad=True)
    dataset = BIOSCANDataset("bioscan-5m", "train", target_rank="species",
                             transform=small_transform(), dna_tokenizer=tokenizer)
    frame = load_dataset("bioscan-5m", split="train", format="polars")
    with_image = frame.filter(pl.col("image").is_not_null())
    assert len(dataset) == with_image.height
    assert dataset.frame["processid"].to_list() == with_image["processid"].to_list()

    item = dataset[3]
    assert set(item) == {"index", "image", "dna", "attention_mask", "target"}
    assert item["index"] == 3
    assert item["image"].shape == (3, SIZE, SIZE)
    assert item["image"].dtype == torch.float32
    barcode = with_image["dna_barcode"][3][:660]
    assert item["dna"].tolist() == tokenizer.encode(barcode)
    assert item["attention_mask"].dtype == torch.bool
    species = with_image["species"][3]
    vocabulary = dataset.vocabularies["species"]
    assert int(item["target"]) == (vocabulary.labels.index(species) if species else -1)
    assert item["target"].dtype == torch.int64
    assert item["target"].shape == ()
    assert dataset.num_classes() == vocabulary.num_classes
    assert vocabulary.labels == tuple(sorted(set(frame["species"].drop_nulls().to_list())))


def test_several_ranks_and_no_target(sample5m: Path) -> None:
    prepared(sample5m)
    several = BIOSCANDataset("bioscan-5m", "val", modalities="dna",
                             target_rank=["order", "genus", "dna_bin"])
    assert several.targets.shape == (len(several), 3)
    assert several[0]["target"].shape == (3,)
    assert isinstance(several[0]["dna"], str)
    assert several.ranks == ("order", "genus", "dna_bin")
    # val labels missing from train map to -1 in the contiguous space.
    train_genera = set(load_dataset("bioscan-5m", split="train", format="polars")["genus"]
                       .drop_nulls().to_list())
    genus = several.frame["genus"].to_list()
    expected = [g in train_genera for g in genus]
    assert (several.targets[:, 1] != MISSING_INDEX).tolist() == expected
    with pytest.raises(FieldHarnessError, match="has 3 target ranks"):
        several.num_classes()

    plain = BIOSCANDataset("bioscan-5m", "test", modalities=(), target_rank=None)
    assert plain[0] == {"index": 0}
    assert plain.targets.shape == (len(plain), 0)


def test_dataset_wide_indices_match_bioscan_dataset(sample5m: Path) -> None:
    bioscan5m = pytest.importorskip("bioscan_dataset.bioscan5m")
    prepared(sample5m)
    theirs = bioscan5m.load_bioscan5m_metadata(sample5m / CSV_RELATIVE_PATH,
                                               split="test+test_unseen")
    ours = BIOSCANDataset("bioscan-5m", "test+test_unseen", modalities=(),
                          target_rank=["genus", "species", "dna_bin"], index="dataset_wide")
    order = {pid: i for i, pid in enumerate(ours.frame["processid"].to_list())}
    positions = [order[pid] for pid in theirs["processid"]]
    assert len(positions) == len(ours)
    for column, rank in enumerate(("genus", "species", "dna_bin")):
        assert ours.targets[positions, column].tolist() == theirs[f"{rank}_index"].tolist()


def test_drop_missing_target_and_vocab_split(sample5m: Path) -> None:
    prepared(sample5m)
    full = BIOSCANDataset("bioscan-5m", "pretrain", modalities=(), target_rank="order",
                          vocab_split="pretrain")
    kept = BIOSCANDataset("bioscan-5m", "pretrain", modalities=(), target_rank="order",
                          vocab_split="pretrain", drop_missing_target=True)
    assert (full.targets == MISSING_INDEX).any()
    assert len(kept) == int((full.targets != MISSING_INDEX).sum())
    assert (kept.targets >= 0).all()
    seen = BIOSCANDataset("bioscan-5m", "test", modalities=(), target_rank="species",
                          vocab_split=["train", "val"])
    labels = load_dataset("bioscan-5m", split="train+val", format="polars")["species"]
    assert seen.vocabularies["species"].labels == tuple(sorted(set(labels.drop_nulls())))


def test_frame_argument_and_deduplication(sample5m: Path) -> None:
    prepared(sample5m)
    frame = load_dataset("bioscan-5m", split="train+val", format="polars")
    doubled = pl.concat([frame, frame.head(5)])
    dataset = BIOSCANDataset("bioscan-5m", "train", frame=doubled, modalities="dna",
                             target_rank="genus", reduce_repeated_barcodes=True)
    kept = deduplicate_barcodes(doubled)
    assert dataset.frame["processid"].to_list() == kept["processid"].to_list()
    assert len(dataset) < frame.height
    assert dataset.vocabularies["genus"].labels == tuple(
        sorted(set(frame.filter(pl.col("split") == "train")["genus"].drop_nulls())))


def test_barcodes_are_truncated(sample5m: Path) -> None:
    prepared(sample5m)
    frame = load_dataset("bioscan-5m", split="train", format="polars")
    dataset = BIOSCANDataset("bioscan-5m", "train", modalities="dna", target_rank=None,
                             max_nucleotides=20)
    assert [dataset[i]["dna"] for i in range(3)] == [
        (barcode or "")[:20] for barcode in frame["dna_barcode"].head(3)]
    whole = BIOSCANDataset("bioscan-5m", "train", modalities="dna", target_rank=None,
                           max_nucleotides=None, dna_transform=len)
    assert whole[0]["dna"] == len(frame["dna_barcode"][0])


# --- images ---------------------------------------------------------------------------------


def test_records_without_image_are_left_out(sample5m: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    prepared(sample5m)
    frame = load_dataset("bioscan-5m", split="pretrain", format="polars")
    missing = frame["image"].null_count()
    assert missing > 0
    with caplog.at_level("WARNING"):
        dataset = BIOSCANDataset("bioscan-5m", "pretrain", transform=small_transform())
    assert len(dataset) == frame.height - missing
    assert f"{missing} of {frame.height} records have no image" in caplog.text
    dna_only = BIOSCANDataset("bioscan-5m", "pretrain", modalities="dna")
    assert len(dna_only) == frame.height


def test_zip_archives_read_in_place(sample5m_zip: Path) -> None:
    prepared(sample5m_zip)
    dataset = BIOSCANDataset("bioscan-5m", "train", transform=False, target_rank=None)
    image = dataset[0]["image"]
    assert isinstance(image, Image.Image)
    assert image.mode == "RGB"
    assert "::" in dataset.frame["image"][0]
    assert dataset.load_image(0).size == image.size
    dataset.close()


def test_missing_image_file_names_the_record(tmp_path: Path) -> None:
    root = prepared(write_bioscan5m_sample(tmp_path / "s", rows=60, seed=2))
    dataset = BIOSCANDataset("bioscan-5m", "test", transform=small_transform())
    path = Path(dataset.frame["image"][0])
    path.unlink()
    processid = dataset.frame["processid"][0]
    with pytest.raises(ImageNotFoundError, match=rf"image file .*{processid}\.jpg of "
                                                 rf"{processid} not found; prepare bioscan-5m"):
        dataset[0]
    assert root.is_dir()


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers(sample5m: Path, context: str) -> None:
    prepared(sample5m)
    dataset = BIOSCANDataset("bioscan-5m", "pretrain", transform=small_transform(),
                             dna_tokenizer=KmerTokenizer(4, max_length=170, pad=True))
    loader = DataLoader(dataset, batch_size=8, num_workers=2, multiprocessing_context=context)
    batches = list(loader)
    assert sum(len(batch["index"]) for batch in batches) == len(dataset)
    assert batches[0]["image"].shape == (8, 3, SIZE, SIZE)
    assert batches[0]["dna"].shape == (8, 170)
    targets = torch.cat([batch["target"] for batch in batches])
    assert targets.tolist() == dataset.targets.tolist()
    assert torch.equal(batches[0]["image"][1], dataset[1]["image"])


# --- BIOSCAN-1M partitions ------------------------------------------------------------------


def test_bioscan1m_partition_selects_by_column(sample1m: Path) -> None:
    prepared(sample1m, "bioscan-1m")
    records = load_dataset("bioscan-1m", format="polars")
    records = pl.concat(list(records.values()))
    column = "small_insect_order"
    dataset = BIOSCANDataset("bioscan-1m", "train", partition=column, target_rank="order",
                             transform=small_transform())
    expected = records.filter(pl.col(column) == "train")
    assert sorted(dataset.frame["processid"].to_list()) == sorted(expected["processid"])
    assert dataset.vocabularies["order"].labels == tuple(sorted(set(expected["order"])))
    test = BIOSCANDataset("bioscan-1m", "val+test", partition=column, target_rank="order",
                          modalities=())
    assert set(test.frame[column].to_list()) == {"validation", "test"}
    assert dataset[0]["image"].shape == (3, SIZE, SIZE)
    dna = BIOSCANDataset("bioscan-1m", "test", partition=column, modalities="dna",
                         target_rank="uri", max_nucleotides=None)
    assert dna[0]["dna"] == (dna.frame["nucraw"][0] or "")


def test_bioscan1m_partition_errors(sample1m: Path) -> None:
    prepared(sample1m, "bioscan-1m")
    with pytest.raises(UnknownNameError, match="unknown BIOSCAN-1M partitioning 'large'"):
        BIOSCANDataset("bioscan-1m", "train", partition="large", modalities=())
    with pytest.raises(UnknownNameError, match="unknown value of partition small_insect_order "
                                               "'pretrain'"):
        BIOSCANDataset("bioscan-1m", "pretrain", partition="small_insect_order", modalities=())
    with pytest.raises(FieldHarnessError, match="partition applies to bioscan-1m only"):
        BIOSCANDataset("bioscan-5m", "train", partition="small_insect_order")


# --- transforms and argument errors -------------------------------------------------------------


def test_transforms_resize_crop_and_normalise() -> None:
    image = Image.new("RGB", (300, 200), tuple(round(255 * m) for m in BIOSCAN5M_MEAN))
    evaluated = image_transform("eval", size=224)(image)
    assert evaluated.shape == (3, 224, 224)
    assert evaluated.abs().max() < 0.03  # the dataset mean colour normalises to about zero
    trained = image_transform("train", dataset="bioscan-1m", size=64, resize=80)(image)
    assert trained.shape == (3, 64, 64)
    imagenet = image_transform("eval", size=8, resize=8, normalization="imagenet")(image)
    mean, std = NORMALIZATIONS["imagenet"]
    pixel = torch.tensor([round(255 * m) / 255 for m in BIOSCAN5M_MEAN])
    expected = (pixel - torch.tensor(mean)) / torch.tensor(std)
    assert torch.allclose(imagenet[:, 0, 0], expected, atol=1e-5)
    with pytest.raises(FieldHarnessError, match="resize is 100, smaller than the crop size 224"):
        image_transform(size=224, resize=100)
    with pytest.raises(UnknownNameError, match="unknown transform kind 'test'"):
        image_transform("test")
    with pytest.raises(FieldHarnessError, match="size is 0; expected a positive number"):
        image_transform(size=0)


def test_argument_errors(sample5m: Path) -> None:
    prepared(sample5m)
    with pytest.raises(UnknownNameError, match="unknown modality 'text'"):
        BIOSCANDataset("bioscan-5m", modalities=("image", "text"))
    with pytest.raises(UnknownNameError, match="unknown index mode 'global'"):
        BIOSCANDataset("bioscan-5m", index="global")
    with pytest.raises(UnknownNameError, match="unknown target rank 'tribe'"):
        BIOSCANDataset("bioscan-5m", modalities=(), target_rank="tribe")
    with pytest.raises(UnknownNameError, match="unknown BIOSCAN dataset 'bioscan-2m'"):
        BIOSCANDataset("bioscan-2m")
    dataset = BIOSCANDataset("bioscan-5m", "val", modalities=(), target_rank="genus")
    with pytest.raises(IndexError, match="out of range"):
        dataset[len(dataset)]
    with pytest.raises(FieldHarnessError, match="without the image modality"):
        dataset.load_image(0)
    assert np.array_equal(dataset[-1]["target"].numpy(), dataset.targets[-1])


def test_bioscan1m_default_partition_and_aliases(sample1m: Path) -> None:
    prepared(sample1m, "bioscan-1m")
    train = load_dataset("bioscan-1m", split="train", format="polars")
    dataset = BIOSCANDataset("bioscan-1m", "train", modalities="dna", target_rank="order")
    assert sorted(dataset.frame["processid"].to_list()) == sorted(train["processid"])
    assert dataset.vocabularies["order"].labels == tuple(sorted(set(train["order"].drop_nulls())))

    validation = load_dataset("bioscan-1m", split="validation", format="polars")
    assert load_dataset("bioscan-1m", split="val", format="polars").equals(validation)
    assert BIOSCANDataset("bioscan-1m", "val", modalities=(), target_rank=None).frame.height == \
        validation.height
    everything = load_dataset("bioscan-1m", split="all", format="polars")
    assert everything.height == sum(
        frame.height for frame in load_dataset("bioscan-1m", format="polars").values())
    assert len(BIOSCANDataset("bioscan-1m", "all", modalities=(), target_rank=None)) == \
        everything.height
