"""Label vocabularies and the taxonomy tree of BIOSCAN metadata.

Two index spaces per rank:

- dataset-wide: the index bioscan-dataset 1.3.0 gives in its ``<rank>_index`` columns, the
  pandas categorical code over every record of the metadata file (all splits), with categories
  in Unicode code-point order. Indices are stable across splits but sparse within one split.
- contiguous: 0 to n - 1 over the labels present in one split (by default ``train``), for
  classifier heads whose size is the number of training classes.

A missing label (null or the empty string) has index -1 in both spaces.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from harness.errors import DataFormatError, FieldHarnessError, UnknownNameError

logger = logging.getLogger(__name__)

#: Taxonomic ranks of BIOSCAN-5M, from the most general to the most specific.
RANKS = ("phylum", "class", "order", "family", "subfamily", "genus", "species")

#: Columns with a label vocabulary: the ranks plus the BOLD Barcode Index Number.
LABEL_COLUMNS = (*RANKS, "dna_bin")

MISSING_INDEX = -1


def _check_column(frame: pl.DataFrame, column: str) -> None:
    if column not in frame.columns:
        raise UnknownNameError("label column", column, frame.columns)
    if frame.schema[column] not in (pl.String, pl.Categorical, pl.Enum, pl.Null):
        raise DataFormatError(
            "label column is not a string column",
            field=column,
            value=str(frame.schema[column]),
            expected="a string or categorical column",
        )


def _labels(frame: pl.DataFrame, column: str) -> pl.Series:
    """Return the column as strings with the empty string turned into null."""
    _check_column(frame, column)
    series = frame.get_column(column).cast(pl.String)
    return pl.select(pl.when(series == "").then(None).otherwise(series).alias(column)).to_series()


@dataclass(frozen=True)
class Vocabulary:
    """The labels of one column and their integer indices.

    Attributes:
        rank: Column name, e.g. ``"species"`` or ``"dna_bin"``.
        labels: Labels in index order: ``labels[i]`` has index ``i``.
        kind: ``"dataset_wide"`` or ``"contiguous"``, how the vocabulary was built.
    """

    rank: str
    labels: tuple[str, ...]
    kind: str
    _lookup: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lookup", {label: i for i, label in enumerate(self.labels)})

    @classmethod
    def dataset_wide(cls, frame: pl.DataFrame, rank: str) -> Vocabulary:
        """Build the vocabulary bioscan-dataset 1.3.0 uses for ``<rank>_index``.

        bioscan-dataset reads the whole CSV with ``dtype="category"``, so the categories are the
        distinct non-missing values of all records, sorted as Python sorts strings (Unicode code
        points, so upper case before lower case). Filtering to a split keeps them all. Pass the
        whole metadata file here, not one split. For BIOSCAN-1M, bioscan-dataset builds the
        categories after deduplication and after filling placeholder labels, so pass the frame in
        that state.

        NOTE: pandas ``read_csv`` also reads ``NA``, ``N/A``, ``null``, ``nan`` and similar
        strings as missing; this function treats only null and ``""`` as missing, so read the CSV
        with the same missing-value rules to get the same categories.

        Args:
            frame: Metadata records.
            rank: One of :data:`LABEL_COLUMNS` or any other string column.

        Raises:
            UnknownNameError: ``rank`` is not a column of ``frame``.
            DataFormatError: the column is not a string column.
        """
        labels = _labels(frame, rank).drop_nulls().unique().sort()
        return cls(rank, tuple(labels.to_list()), "dataset_wide")

    @classmethod
    def contiguous(
        cls, frame: pl.DataFrame, rank: str, split: str | Sequence[str] = "train"
    ) -> Vocabulary:
        """Build indices 0 to n - 1 over the labels present in ``split``, in sorted order.

        Labels seen only in other splits, like missing labels, map to -1, so a model trained on
        ``split`` never gets a target outside its head.

        Args:
            frame: Metadata records with a ``split`` column.
            rank: Label column.
            split: Split name or names whose labels form the vocabulary.

        Raises:
            UnknownNameError: ``rank`` or ``split`` is not a column, or a requested split has no
                record in ``frame``.
        """
        if "split" not in frame.columns:
            raise UnknownNameError("column", "split", frame.columns)
        splits = [split] if isinstance(split, str) else list(split)
        present = set(frame.get_column("split").drop_nulls().unique().to_list())
        for name in splits:
            if name not in present:
                raise UnknownNameError("split", name, present)
        labels = _labels(frame, rank).filter(frame.get_column("split").is_in(splits))
        labels = labels.drop_nulls().unique().sort()
        return cls(rank, tuple(labels.to_list()), "contiguous")

    @property
    def num_classes(self) -> int:
        """Number of labels, i.e. the size of a classifier head over this vocabulary."""
        return len(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self._lookup

    def label2index(self, labels: str | None | Iterable[str | None] | pl.Series) -> Any:
        """Return the index of one label, or an ``int64`` array for many.

        Missing labels (``None``, ``""``, NaN) map to -1.

        Raises:
            UnknownNameError: a non-missing label is not in the vocabulary.
        """
        if labels is None or isinstance(labels, str):
            return self._index_of(labels)
        if isinstance(labels, float) and np.isnan(labels):
            return MISSING_INDEX
        values = labels.to_list() if isinstance(labels, pl.Series) else list(labels)
        return np.fromiter((self._index_of(v) for v in values), dtype=np.int64, count=len(values))

    def _index_of(self, label: Any) -> int:
        if label is None or label == "" or (isinstance(label, float) and np.isnan(label)):
            return MISSING_INDEX
        try:
            return self._lookup[label]
        except KeyError:
            raise UnknownNameError(f"{self.rank} label", label, self._valid_sample()) from None

    def _valid_sample(self) -> list[str]:
        # Vocabularies reach 22,622 species; name a few and the count instead of all of them.
        if len(self.labels) <= 20:
            return list(self.labels)
        return [*self.labels[:10], f"... ({len(self.labels)} labels in all)"]

    def index2label(self, indices: int | Iterable[int]) -> Any:
        """Return the label of one index, or a list for many; -1 gives ``None``.

        Raises:
            FieldHarnessError: an index is below -1 or at least :attr:`num_classes`.
        """
        if isinstance(indices, (int, np.integer)):
            return self._label_of(int(indices))
        return [self._label_of(int(i)) for i in np.asarray(list(indices)).ravel()]

    def _label_of(self, index: int) -> str | None:
        if index == MISSING_INDEX:
            return None
        if not 0 <= index < len(self.labels):
            raise FieldHarnessError(
                f"{self.rank} index {index} is out of range; valid indices are -1 (missing) "
                f"and 0 to {len(self.labels) - 1}"
            )
        return self.labels[index]

    def encode(self, frame: pl.DataFrame) -> pl.Series:
        """Return the ``int64`` index of every record's label, vectorised; unknown labels raise.

        Raises:
            UnknownNameError: a record has a label outside the vocabulary of a dataset-wide
                vocabulary. Contiguous vocabularies map such labels to -1 instead.
        """
        labels = _labels(frame, self.rank)
        table = pl.DataFrame(
            {"label": list(self.labels), "index": np.arange(len(self.labels), dtype=np.int64)},
            schema={"label": pl.String, "index": pl.Int64},
        )
        joined = pl.DataFrame({"label": labels}).join(
            table, on="label", how="left", maintain_order="left"
        )
        indices = joined.get_column("index")
        unknown = labels.is_not_null() & indices.is_null()
        if self.kind == "dataset_wide" and unknown.any():
            first = labels.filter(unknown)[0]
            raise UnknownNameError(f"{self.rank} label", first, self._valid_sample())
        return indices.fill_null(MISSING_INDEX).alias(f"{self.rank}_index")


def ranks_present(frame: pl.DataFrame) -> pl.DataFrame:
    """Return one boolean column per label column of ``frame``: true where the label is present.

    Covers :data:`LABEL_COLUMNS` that ``frame`` has; null and ``""`` count as missing.
    """
    columns = [c for c in LABEL_COLUMNS if c in frame.columns]
    return pl.DataFrame([_labels(frame, c).is_not_null().alias(c) for c in columns])


Node = tuple[str, str]
"""A taxon: ``(rank, label)``. The same name may appear at two ranks, so nodes carry both."""


class Taxonomy:
    """Parent and child links between taxa, built from the records.

    The parent of a taxon is the label at the nearest more general rank that is present in the
    record: a genus's parent is its subfamily, or its family when the record has no subfamily.
    When records disagree, the parent is the one most records give (ties go to the more specific
    rank, then to the alphabetically first label), and the taxon is listed in :attr:`conflicts`.
    A taxon at the most general rank has no parent.

    Args:
        frame: Metadata records with some of the :data:`RANKS` columns.
        ranks: Ranks to link, from general to specific; ``dna_bin`` may be added last.

    Raises:
        UnknownNameError: a rank is not a column of ``frame``.
    """

    def __init__(self, frame: pl.DataFrame, ranks: Sequence[str] = RANKS):
        self.ranks = tuple(ranks)
        for rank in self.ranks:
            if rank not in frame.columns:
                raise UnknownNameError("rank column", rank, frame.columns)

        labelled = pl.DataFrame([_labels(frame, rank) for rank in self.ranks])
        edges = []
        for position, rank in enumerate(self.ranks[1:], start=1):
            general = self.ranks[:position]
            # Nearest present ancestor: coalesce from the closest rank outwards.
            parent_rank = pl.coalesce(
                [pl.when(pl.col(r).is_not_null()).then(pl.lit(r)) for r in reversed(general)]
            )
            parent_label = pl.coalesce([pl.col(r) for r in reversed(general)])
            edges.append(
                labelled.filter(pl.col(rank).is_not_null()).select(
                    pl.lit(rank).alias("rank"),
                    pl.col(rank).alias("label"),
                    parent_rank.alias("parent_rank"),
                    parent_label.alias("parent_label"),
                )
            )
        counts = (
            pl.concat(edges)
            .filter(pl.col("parent_label").is_not_null())
            .group_by(["rank", "label", "parent_rank", "parent_label"])
            .len("records")
            .with_columns(
                pl.col("parent_rank")
                .replace_strict(self.ranks, range(len(self.ranks)), return_dtype=pl.Int64)
                .alias("parent_depth")
            )
            .sort(
                ["rank", "label", "records", "parent_depth", "parent_label"],
                descending=[False, False, True, True, False],
            )
            if edges
            else pl.DataFrame()
        )

        self._parent: dict[Node, Node] = {}
        self._children: dict[Node, list[Node]] = {}
        self._nodes: set[Node] = set()
        for rank in self.ranks:
            self._nodes.update((rank, label) for label in labelled[rank].drop_nulls().unique())
        conflict_rows = []
        if counts.height:
            for (rank, label), group in counts.group_by(["rank", "label"], maintain_order=True):
                parents = list(zip(group["parent_rank"], group["parent_label"], strict=True))
                self._parent[(rank, label)] = parents[0]
                self._children.setdefault(parents[0], []).append((rank, label))
                if len(parents) > 1:
                    conflict_rows.append(
                        {
                            "rank": rank,
                            "label": label,
                            "parents": [f"{r}:{lab}" for r, lab in parents],
                            "records": group["records"].to_list(),
                        }
                    )
        for children in self._children.values():
            children.sort()
        self.conflicts = pl.DataFrame(
            conflict_rows,
            schema={
                "rank": pl.String,
                "label": pl.String,
                "parents": pl.List(pl.String),
                "records": pl.List(pl.UInt32),
            },
        )
        """Taxa with more than one parent: rank, label, parents as ``rank:label`` (most records
        first) and the record count of each."""
        if self.conflicts.height:
            logger.info("%d taxa have more than one parent", self.conflicts.height)

    def _check_node(self, rank: str, label: str) -> Node:
        if rank not in self.ranks:
            raise UnknownNameError("rank", rank, self.ranks)
        if (rank, label) not in self._nodes:
            raise UnknownNameError(f"{rank} label", label, self._sample_labels(rank))
        return (rank, label)

    def _sample_labels(self, rank: str) -> list[str]:
        labels = sorted(label for r, label in self._nodes if r == rank)
        if len(labels) <= 20:
            return labels
        return [*labels[:10], f"... ({len(labels)} labels in all)"]

    def parent(self, rank: str, label: str) -> Node | None:
        """Return the parent ``(rank, label)`` of a taxon, or ``None`` when it has none.

        Raises:
            UnknownNameError: ``rank`` is not linked or ``label`` never occurs at ``rank``.
        """
        return self._parent.get(self._check_node(rank, label))

    def children(self, rank: str, label: str) -> list[Node]:
        """Return the taxa whose parent is this taxon, sorted by rank name and label.

        Raises:
            UnknownNameError: ``rank`` is not linked or ``label`` never occurs at ``rank``.
        """
        return list(self._children.get(self._check_node(rank, label), []))

    def path(self, record: Mapping[str, Any]) -> list[Node]:
        """Return the present taxa of one record, from the most general rank to the most specific.

        Args:
            record: Rank -> label, e.g. one row of ``frame.iter_rows(named=True)``; missing,
                null and ``""`` labels are left out.
        """
        path = []
        for rank in self.ranks:
            label = record.get(rank)
            if label is not None and label != "":
                path.append((rank, str(label)))
        return path

    def ancestors(self, rank: str, label: str) -> list[Node]:
        """Return the chain of parents of a taxon, from the nearest to the most general."""
        chain = []
        node = self.parent(rank, label)
        while node is not None:
            chain.append(node)
            node = self._parent.get(node)
        return chain

    ranks_present = staticmethod(ranks_present)
