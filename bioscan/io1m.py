"""Reader of the BIOSCAN-1M metadata TSV and the CLIBD partition files.

``BIOSCAN_Insect_Dataset_metadata.tsv`` is tab-separated with one header line and one line per
specimen; fields are not quoted. Missing taxonomy is the literal ``not_classified``, which the
reader turns into null, as ``bioscan-dataset`` does; an empty field is null in every column.
Everything else stays as in the file. The label clean-ups ``bioscan-dataset`` applies when it
loads the file are available separately as :func:`apply_bioscan_dataset_fixes`.
"""

from __future__ import annotations

import logging
from os import PathLike
from pathlib import Path

import polars as pl

from bioscan.spec1m import (
    CLIBD_SPLITS,
    PARTITION_VALUES,
    PARTITIONING_COLUMNS,
    TAXONOMY_COLUMNS,
    TSV_COLUMNS,
)
from harness.errors import DataFormatError

__all__ = [
    "MISSING_LABEL",
    "REQUIRED_COLUMNS",
    "apply_bioscan_dataset_fixes",
    "read_clibd_partitioning",
    "read_metadata_tsv",
]

logger = logging.getLogger(__name__)

MISSING_LABEL = "not_classified"
"""The TSV's placeholder for a missing taxonomic label."""

REQUIRED_COLUMNS = ("sampleid", "processid", "image_file", "chunk_number", *PARTITIONING_COLUMNS)
"""Columns a metadata TSV must have; the other TSV columns are null when absent."""

TRIBE_BY_GENUS = {"Asteia": "Asteiini", "Nemorilla": "Winthemiini", "Philaenus": "Philaenini"}
"""Tribes ``bioscan-dataset`` 1.3.0 sets for every record of these genera, because the release
labels only some of them."""


def _file_line(mask: pl.Series) -> int:
    """Return the 1-based file line of the first true row (the header is line 1)."""
    return int(mask.arg_true()[0]) + 2


def _read_strings(path: Path) -> pl.DataFrame:
    try:
        return pl.read_csv(path, separator="\t", infer_schema=False, quote_char=None)
    except pl.exceptions.NoDataError:
        raise DataFormatError("empty metadata file", path=path, line=1,
                              expected="a tab-separated header line") from None
    except pl.exceptions.PolarsError as err:
        raise DataFormatError(f"unreadable tab-separated file: {err}", path=path,
                              expected="one tab-separated line per specimen with as many "
                                       "fields as the header") from err


def read_metadata_tsv(path: str | PathLike[str]) -> pl.DataFrame:
    """Read ``BIOSCAN_Insect_Dataset_metadata.tsv`` with typed columns.

    Args:
        path: The metadata TSV (about 1.1 M lines; read in a few seconds).

    Returns:
        One row per line, in file order, with the columns of
        :data:`bioscan.spec1m.TSV_COLUMNS`: strings, ``chunk_number`` as Int16, taxonomy
        (:data:`~bioscan.spec1m.TAXONOMY_COLUMNS`) null where the file has ``not_classified``.
        Columns the file lacks beyond :data:`REQUIRED_COLUMNS` are null; extra columns are
        dropped.

    Raises:
        DataFormatError: The file is empty, a line has a different number of fields, a required
            column is missing, or a value is invalid (empty ids or image file, a chunk_number
            that is not an integer >= 1, a partition other than train, validation, test or
            no_split). The message names the file, line, column and value.
    """
    path = Path(path)
    frame = _read_strings(path)
    for column in REQUIRED_COLUMNS:
        if column not in frame.columns:
            raise DataFormatError(
                f"missing column {column!r} in the header (found: {', '.join(frame.columns)})",
                path=path, line=1, expected=f"the columns {', '.join(REQUIRED_COLUMNS)}")

    for column in ("sampleid", "processid", "image_file"):
        empty = frame[column].is_null()
        if empty.any():
            raise DataFormatError("empty value", path=path, line=_file_line(empty),
                                  field=column, value="", expected="a non-empty identifier")

    chunk = frame["chunk_number"].cast(pl.Int16, strict=False)
    bad = chunk.is_null() | (chunk < 1)
    if bad.any():
        line = _file_line(bad)
        raise DataFormatError("invalid chunk number", path=path, line=line,
                              field="chunk_number", value=frame["chunk_number"][line - 2] or "",
                              expected="an integer >= 1 (the images' part<N> folder)")

    for column in PARTITIONING_COLUMNS:
        bad = ~frame[column].is_in(PARTITION_VALUES) | frame[column].is_null()
        if bad.any():
            line = _file_line(bad)
            raise DataFormatError("invalid partition", path=path, line=line, field=column,
                                  value=frame[column][line - 2] or "",
                                  expected=" or ".join(PARTITION_VALUES))

    columns = []
    for column in TSV_COLUMNS:
        if column == "chunk_number":
            columns.append(chunk.alias(column))
        elif column not in frame.columns:
            columns.append(pl.lit(None, pl.String).alias(column))
        elif column in TAXONOMY_COLUMNS:
            value = pl.col(column)
            columns.append(pl.when(value == MISSING_LABEL).then(None).otherwise(value)
                           .alias(column))
        else:
            columns.append(pl.col(column))
    result = frame.select(columns)
    logger.debug("read %d records from %s", result.height, path)
    return result


def apply_bioscan_dataset_fixes(frame: pl.DataFrame) -> pl.DataFrame:
    """Return ``frame`` with the label clean-ups that ``bioscan-dataset`` 1.3.0 makes on load.

    In this order, as ``load_bioscan1m_metadata`` does:

    1. the tribe of every record of the genera Asteia, Nemorilla and Philaenus is set to
       Asteiini, Winthemiini and Philaenini;
    2. a missing genus is the first word of the species, where the species is known;
    3. a missing tribe of a record with a genus becomes ``"unassigned <subfamily>"``, or
       ``"unassigned <family>"`` without a subfamily;
    4. a missing subfamily of a record with a tribe becomes ``"unassigned <family>"``.

    The prepared table keeps the labels as published; call this on a loaded frame to get the
    labels ``bioscan-dataset`` trains on. DNA truncation (``max_nucleotides``) is left out.

    Args:
        frame: Rows of :func:`read_metadata_tsv` (or of the prepared table) with the columns
            family, subfamily, tribe, genus and species.
    """
    genus = pl.col("genus")
    tribe = pl.col("tribe")
    fixed_tribe = tribe
    for genus_name, tribe_name in TRIBE_BY_GENUS.items():
        fixed_tribe = pl.when(genus == genus_name).then(pl.lit(tribe_name)).otherwise(fixed_tribe)
    frame = frame.with_columns(fixed_tribe.alias("tribe"))

    first_word = pl.col("species").str.split(" ").list.first()
    frame = frame.with_columns(
        pl.when(genus.is_null()).then(first_word).otherwise(genus).alias("genus"))

    placeholder = pl.when(pl.col("subfamily").is_not_null()).then(
        pl.lit("unassigned ") + pl.col("subfamily")).otherwise(
        pl.lit("unassigned ") + pl.col("family"))
    frame = frame.with_columns(
        pl.when(tribe.is_null() & genus.is_not_null()).then(placeholder).otherwise(tribe)
        .alias("tribe"))

    frame = frame.with_columns(
        pl.when(pl.col("subfamily").is_null() & tribe.is_not_null())
        .then(pl.lit("unassigned ") + pl.col("family")).otherwise(pl.col("subfamily"))
        .alias("subfamily"))
    return frame


def read_clibd_partitioning(folder: str | PathLike[str]) -> pl.DataFrame:
    """Read the CLIBD partition files of ``folder`` into ``sampleid`` and ``clibd_split``.

    Each of the ten disjoint partitions (:data:`bioscan.spec1m.CLIBD_SPLITS`) is a file
    ``<partition>.txt`` with one sampleid per line and no header.

    Raises:
        DataFormatError: A partition file is missing, or a sampleid is listed twice (in one
            file or in two); the message names the file and line.
    """
    folder = Path(folder)
    frames = []
    for split in CLIBD_SPLITS:
        path = folder / f"{split}.txt"
        if not path.is_file():
            names = ", ".join(f"{name}.txt" for name in CLIBD_SPLITS)
            raise DataFormatError("missing CLIBD partition file", path=path,
                                  expected=f"the files {names}")
        lines = path.read_text(encoding="utf-8").splitlines()
        frame = pl.DataFrame({"sampleid": [line.strip() for line in lines],
                              "line": range(1, len(lines) + 1)},
                             schema={"sampleid": pl.String, "line": pl.Int64})
        frames.append(frame.filter(pl.col("sampleid") != "").with_columns(
            clibd_split=pl.lit(split), path=pl.lit(str(path))))
    partition = pl.concat(frames)

    duplicated = partition["sampleid"].is_duplicated()
    if duplicated.any():
        rows = partition.filter(duplicated)
        value = rows["sampleid"][0]
        first, second = rows.filter(pl.col("sampleid") == value).head(2).iter_rows(named=True)
        raise DataFormatError(
            f"sampleid listed twice, first in {first['path']} line {first['line']}",
            path=second["path"], line=second["line"], field="sampleid", value=value,
            expected="each sampleid in one CLIBD partition only")
    return partition.select("sampleid", "clibd_split")
