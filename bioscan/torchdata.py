"""PyTorch input pipeline for prepared BIOSCAN-5M and BIOSCAN-1M records.

:class:`BIOSCANDataset` is a map-style dataset over one split (or a union) of a prepared copy.
Items are dicts that the default DataLoader collate function batches::

    {"index": int,
     "image": float32 [3, H, W]          (with "image" in modalities),
     "dna": int64 [L], "attention_mask": bool [L]   (with "dna" and a tokenizer),
     "target": int64 scalar, or [n] for several ranks  (with target_rank)}

Targets are label indices of one or more rank columns, in the contiguous space of the training
split or in the dataset-wide space of ``bioscan-dataset`` (:mod:`bioscan.labels`). A missing
label, or one outside the vocabulary, is -1 (:data:`bioscan.labels.MISSING_INDEX`), which
``torch.nn.CrossEntropyLoss(ignore_index=-1)`` skips.

Everything an item needs is held in numpy arrays and Arrow buffers, which forked DataLoader
workers share without copying, and no polars call runs in ``__getitem__``: polars' thread pool
does not survive ``fork``.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Sequence
from os import PathLike
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import torch
from PIL import Image
from torch.utils.data import Dataset

from bioscan.dna import MAX_NUCLEOTIDES, KmerTokenizer, deduplicate_barcodes, truncate
from bioscan.labels import MISSING_INDEX, Vocabulary
from bioscan.spec1m import DEFAULT_PARTITIONING, PARTITION_VALUES, PARTITIONING_COLUMNS
from bioscan.transforms import image_transform
from harness.errors import FieldHarnessError, UnknownNameError
from harness.imagestore import ImageNotFoundError, ImageStore

__all__ = ["DATASETS", "MODALITIES", "BIOSCANDataset", "ImageNotFoundError", "image_transform"]

logger = logging.getLogger(__name__)

DATASETS = {"bioscan-5m": "dna_barcode", "bioscan-1m": "nucraw"}
"""The two releases and the column of each that holds the DNA barcode."""

MODALITIES = ("image", "dna")
INDEX_MODES = ("contiguous", "dataset_wide")
PARTITION_SPLIT_ALIASES = {"val": "validation"}


def _as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


class BIOSCANDataset(Dataset):
    """Images, DNA barcodes and label indices of prepared BIOSCAN records.

    Args:
        dataset: ``"bioscan-5m"`` or ``"bioscan-1m"``.
        split: A split, an alias or a ``+`` union, as ``load_dataset`` takes them. With
            ``partition`` (BIOSCAN-1M), a value of that partitioning column instead: ``train``,
            ``validation`` (or ``val``), ``test``, ``no_split``, ``all``, or a ``+`` union.
        modalities: Any of ``"image"`` and ``"dna"``; an empty tuple gives targets only.
        target_rank: A label column (``"order"``, ``"species"``, ``"dna_bin"``; BIOSCAN-1M's
            BIN column is ``"uri"``), a list of them, or ``None`` for no target.
        index: ``"contiguous"`` (0 to n - 1 over the labels of ``vocab_split``) or
            ``"dataset_wide"`` (the indices of ``bioscan-dataset``, over every prepared record).
        vocab_split: Split (or partition value) whose labels form a contiguous vocabulary.
        transform: Applied to each RGB PIL image; ``image_transform("eval", dataset=...)`` for
            ``None``. Pass ``transform=False`` to get the PIL image itself.
        dna_transform: Applied to each barcode string (after truncation); overrides
            ``dna_tokenizer``.
        dna_tokenizer: Tokenizer giving ``"dna"`` ids and ``"attention_mask"``; set its
            ``max_length`` and ``pad`` for batches of equal length. ``None`` with no
            ``dna_transform`` gives the barcode string.
        max_nucleotides: Barcodes are cut to this length first (660, as ``bioscan-dataset``);
            ``None`` keeps them whole.
        reduce_repeated_barcodes: Keep one record per distinct barcode among the loaded records
            (:func:`bioscan.dna.deduplicate_barcodes`). ``bioscan-dataset`` deduplicates over the
            whole file before it selects the split, so the records it keeps can differ.
        partition: BIOSCAN-1M partitioning column (e.g. ``"large_insect_order"``); the records
            are every prepared record whose column value is in ``split``. For BIOSCAN-1M,
            ``None`` means ``large_diptera_family``, the partitioning of the prepared splits.
        drop_missing_target: Leave out records whose target (any of several) is -1.
        version, data_dir: As in ``load_dataset``.
        frame: Already loaded records (``load_dataset(..., format="polars")``) to use in place of
            loading ``split``. Contiguous vocabularies are then built from its ``vocab_split``
            records, and dataset-wide ones from all of it.

    Attributes:
        frame: The records in item order (polars), e.g. to score predictions per rank.
        targets: int64 [N] (one rank) or [N, n] (several); empty [N, 0] without a target.
        vocabularies: Rank -> :class:`bioscan.labels.Vocabulary` of the targets.
        ranks: The target ranks, in target order.

    Raises:
        UnknownNameError: ``dataset``, a modality, ``index``, a rank, ``partition`` or a
            partition value is not known.
        FieldHarnessError: No record is left, or ``partition`` is given for BIOSCAN-5M.
        NotPreparedError: As ``load_dataset`` raises it.
    """

    def __init__(
        self,
        dataset: str = "bioscan-5m",
        split: str = "train",
        *,
        modalities: str | Sequence[str] = ("image", "dna"),
        target_rank: str | Sequence[str] | None = "species",
        index: str = "contiguous",
        vocab_split: str | Sequence[str] = "train",
        transform: Callable[[Image.Image], Any] | bool | None = None,
        dna_transform: Callable[[str], Any] | None = None,
        dna_tokenizer: KmerTokenizer | None = None,
        max_nucleotides: int | None = MAX_NUCLEOTIDES,
        reduce_repeated_barcodes: bool = False,
        partition: str | None = None,
        drop_missing_target: bool = False,
        version: str | None = None,
        data_dir: str | PathLike[str] | None = None,
        frame: pl.DataFrame | None = None,
    ):
        if dataset not in DATASETS:
            raise UnknownNameError("BIOSCAN dataset", dataset, DATASETS)
        self.dataset = dataset
        self.split = split
        self.modalities = _as_tuple(modalities)
        for modality in self.modalities:
            if modality not in MODALITIES:
                raise UnknownNameError("modality", modality, MODALITIES)
        if index not in INDEX_MODES:
            raise UnknownNameError("index mode", index, INDEX_MODES)
        if dataset == "bioscan-1m" and partition is None:
            # The prepared BIOSCAN-1M splits are the values of the default partitioning.
            partition = DEFAULT_PARTITIONING
        self.ranks = _as_tuple(target_rank)
        self._several_ranks = target_rank is not None and not isinstance(target_rank, str)
        self._load_args = {"version": version, "data_dir": data_dir}

        selected = self._select(frame, split, partition)
        for rank in self.ranks:
            if rank not in selected.columns:
                raise UnknownNameError("target rank", rank, selected.columns)
        if reduce_repeated_barcodes:
            before = selected.height
            selected = deduplicate_barcodes(selected, column=DATASETS[dataset],
                                            max_nucleotides=max_nucleotides)
            logger.info("%s: kept %d of %d records with distinct barcodes", split,
                        selected.height, before)

        self.vocabularies = {
            rank: self._vocabulary(rank, index, vocab_split, partition, frame)
            for rank in self.ranks
        }
        targets = np.zeros((selected.height, len(self.ranks)), dtype=np.int64)
        for column, rank in enumerate(self.ranks):
            targets[:, column] = self.vocabularies[rank].encode(selected).to_numpy()
        if drop_missing_target and self.ranks:
            keep = (targets != MISSING_INDEX).all(axis=1)
            if not keep.all():
                logger.info("%s: %d of %d records have no target in %s and are left out",
                            split, int((~keep).sum()), len(keep), ", ".join(self.ranks))
            selected, targets = selected.filter(pl.Series(keep)), targets[keep]

        if "image" in self.modalities:
            selected, targets = self._with_images(selected, targets)
        if selected.height == 0:
            raise FieldHarnessError(f"{dataset} split {split!r} has no records to load with "
                                    f"modalities {self.modalities} and targets {self.ranks}")

        self.frame = selected
        self.targets = targets if self._several_ranks or not self.ranks else targets[:, 0]
        self._targets = targets
        self.transform = (None if transform is False else
                          transform if transform is not None else
                          image_transform("eval", dataset=dataset))
        self.dna_transform = dna_transform
        self.dna_tokenizer = dna_tokenizer
        if "dna" in self.modalities:
            barcodes = truncate(selected[DATASETS[dataset]], max_nucleotides).fill_null("")
            self._barcodes: pa.Array | None = barcodes.to_arrow()
        else:
            self._barcodes = None
        if "image" in self.modalities:
            self._images: ImageStore | None = ImageStore(
                selected["image"], selected["processid"].to_list(), dataset=dataset,
                image_format="a JPEG image")
        else:
            self._images = None

    # --- loading ------------------------------------------------------------------------------

    def _load(self, split: str | None, columns: list[str] | None = None) -> pl.DataFrame:
        from harness.loading import load_dataset

        loaded = load_dataset(self.dataset, split=split, format="polars", columns=columns,
                              **self._load_args)
        if isinstance(loaded, dict):
            return pl.concat(list(loaded.values()), how="vertical_relaxed")
        return loaded

    def _partition_values(self, partition: str, value: str | Sequence[str]) -> list[str]:
        values = []
        for part in _as_tuple(value) if not isinstance(value, str) else value.split("+"):
            part = PARTITION_SPLIT_ALIASES.get(part.strip(), part.strip())
            if part == "all":
                values += PARTITION_VALUES
                continue
            if part not in PARTITION_VALUES:
                raise UnknownNameError(f"value of partition {partition}", part,
                                       (*PARTITION_VALUES, "val", "all"))
            values.append(part)
        return list(dict.fromkeys(values))

    def _select(self, frame: pl.DataFrame | None, split: str,
                partition: str | None) -> pl.DataFrame:
        if partition is None:
            return self._load(split) if frame is None else frame
        if self.dataset != "bioscan-1m":
            raise FieldHarnessError(f"partition applies to bioscan-1m only, not {self.dataset}; "
                                    "choose BIOSCAN-5M records with split")
        if partition not in PARTITIONING_COLUMNS:
            raise UnknownNameError("BIOSCAN-1M partitioning", partition, PARTITIONING_COLUMNS)
        values = self._partition_values(partition, split)
        records = self._load(None) if frame is None else frame
        return records.filter(pl.col(partition).is_in(values))

    def _vocabulary(self, rank: str, index: str, vocab_split: str | Sequence[str],
                    partition: str | None, frame: pl.DataFrame | None) -> Vocabulary:
        if index == "dataset_wide":
            records = frame if frame is not None else self._load(None, [rank])
            return Vocabulary.dataset_wide(records, rank)
        if partition is not None:
            records = frame if frame is not None else self._load(None, [rank, partition])
            values = self._partition_values(partition, vocab_split)
            records = records.filter(pl.col(partition).is_in(values))
            return Vocabulary.contiguous(records.with_columns(split=pl.lit("vocab")), rank,
                                         "vocab")
        if frame is not None:
            return Vocabulary.contiguous(frame, rank, vocab_split)
        split = vocab_split if isinstance(vocab_split, str) else "+".join(vocab_split)
        records = self._load(split, [rank, "split"])
        return Vocabulary.contiguous(records, rank, sorted(set(records["split"].to_list())))

    def _with_images(self, frame: pl.DataFrame,
                     targets: np.ndarray) -> tuple[pl.DataFrame, np.ndarray]:
        if "image" not in frame.columns:
            raise FieldHarnessError(f"the prepared {self.dataset} records have no image column; "
                                    "load them without the image modality")
        has_image = frame["image"].is_not_null()
        missing = frame.height - int(has_image.sum())
        if missing:
            first = frame.filter(~has_image)["processid"][0]
            logger.warning("%s: %d of %d records have no image (not found at prepare time) and "
                           "are left out (first: %s)", self.split, missing, frame.height, first)
            keep = has_image.to_numpy()
            return frame.filter(has_image), targets[keep]
        return frame, targets

    # --- items --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._targets)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = operator.index(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} records")

        item: dict[str, Any] = {"index": index}
        if self._images is not None:
            image = self._images.load(index)
            item["image"] = self.transform(image) if self.transform is not None else image
        if self._barcodes is not None:
            barcode = self._barcodes[index].as_py()
            if self.dna_transform is not None:
                item["dna"] = self.dna_transform(barcode)
            elif self.dna_tokenizer is not None:
                ids, mask = self.dna_tokenizer.encode_batch([barcode])
                item["dna"] = torch.from_numpy(ids[0])
                item["attention_mask"] = torch.from_numpy(mask[0])
            else:
                item["dna"] = barcode
        if self.ranks:
            target = self._targets[index]
            item["target"] = torch.tensor(target if self._several_ranks else target[0],
                                          dtype=torch.int64)
        return item

    def load_image(self, index: int) -> Image.Image:
        """Decode the image of record ``index`` into an RGB PIL image, without the transform.

        Raises:
            FieldHarnessError: The dataset was built without the image modality.
            ImageNotFoundError: The file, archive or member is gone since prepare.
        """
        if self._images is None:
            raise FieldHarnessError("this dataset was built without the image modality")
        return self._images.load(index)

    def close(self) -> None:
        """Close the zip archives this process opened. The next read reopens them."""
        if self._images is not None:
            self._images.close()

    def num_classes(self, rank: str | None = None) -> int:
        """Return the vocabulary size of ``rank`` (the only target rank for ``None``)."""
        if rank is None:
            if len(self.ranks) != 1:
                raise FieldHarnessError(f"the dataset has {len(self.ranks)} target ranks; name "
                                        f"one of {self.ranks}")
            rank = self.ranks[0]
        if rank not in self.vocabularies:
            raise UnknownNameError("target rank", rank, self.ranks)
        return self.vocabularies[rank].num_classes
