"""Reader of the BIOSCAN-5M metadata CSV, ``BIOSCAN_5M_Insect_Dataset_metadata.csv``.

The file has one header row and one row per specimen, comma-separated with standard CSV
quoting, in UTF-8. Columns are selected by name, so extra columns and another column order are
accepted. A missing value is an empty field; older BIOSCAN tooling also writes the literal
``no_data``, so both read as null in every column.

The whole file (5,150,850 rows, about 4 GB) is parsed by polars' multi-threaded CSV reader with
every column as text, and the numeric columns are then cast in one vectorised step each.

.. note::
    ``bioscan-dataset`` reads the file with pandas, which also takes ``NA``, ``NaN``, ``null``,
    ``None`` and a few other words as missing; here only empty fields and ``no_data`` are.
"""

from __future__ import annotations

import csv
from os import PathLike
from pathlib import Path

import polars as pl

from bioscan.spec import FLOAT_COLUMNS, INT_COLUMNS, METADATA_COLUMNS
from bioscan.splits import SPLITS
from harness.errors import DataFormatError

__all__ = ["NULL_VALUES", "POLARS_TYPES", "read_metadata_csv"]

NULL_VALUES: tuple[str, ...] = ("", "no_data")
"""Field values that read as null."""

POLARS_TYPES: dict[str, pl.DataType] = {
    **{name: pl.String() for name in METADATA_COLUMNS},
    **{name: pl.Float64() for name in FLOAT_COLUMNS},
    "inferred_ranks": pl.Int16(),
    "index_bioscan_1M_insect": pl.Int64(),
}
"""Type of each column of the frame ``read_metadata_csv`` returns."""

_BOM = "\ufeff"


def _header(path: Path) -> list[str]:
    """Return the column names of the first line of ``path``."""
    with path.open("rb") as handle:
        raw = handle.readline()
    try:
        first = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError("the header is not UTF-8 text", path=path, line=1) from err
    if not first.strip():
        raise DataFormatError("empty file or empty header line", path=path, line=1,
                              expected="a header line with the 23 metadata columns")
    return [name.strip() for name in next(csv.reader([first.removeprefix(_BOM)]))]


def _check_header(path: Path, header: list[str]) -> None:
    missing = [name for name in METADATA_COLUMNS if name not in header]
    if missing:
        raise DataFormatError(
            f"missing column(s) {', '.join(repr(n) for n in missing)} in the header "
            f"(found: {', '.join(header)})",
            path=path, line=1,
            expected=f"the {len(METADATA_COLUMNS)} columns {', '.join(METADATA_COLUMNS)}",
        )
    repeated = sorted({name for name in METADATA_COLUMNS if header.count(name) > 1})
    if repeated:
        raise DataFormatError(
            f"column(s) {', '.join(repr(n) for n in repeated)} appear more than once in the "
            "header", path=path, line=1, expected="each column once",
        )


def _line(mask: pl.Series) -> int:
    """Return the 1-based file line of the first true row; the header is line 1.

    Rows are assumed to be one line each, as in the official file (no field contains a newline).
    """
    return int(mask.arg_true()[0]) + 2


def _fail(path: Path, mask: pl.Series, text: pl.Series, column: str, problem: str,
          expected: str) -> None:
    """Raise a DataFormatError for the first true row of ``mask``: "empty value" for a null
    field, else ``problem``."""
    line = _line(mask)
    value = text[line - 2]
    raise DataFormatError("empty value" if value is None else problem, path=path, line=line,
                          field=column, value=value, expected=expected)


def _cast_float(path: Path, frame: pl.DataFrame, column: str) -> pl.Series:
    text = frame[column]
    values = text.cast(pl.Float64, strict=False)
    bad = values.is_null() & text.is_not_null()
    if bad.any():
        _fail(path, bad, text, column, "not a number", "a decimal number or an empty field")
    return values


def _cast_int(path: Path, frame: pl.DataFrame, column: str, dtype: pl.DataType) -> pl.Series:
    """Cast an integer column; integral decimals such as ``150502.0`` are accepted, as pandas
    accepts them for bioscan-dataset's ``Int64`` and ``uint8`` columns."""
    text = frame[column]
    values = text.cast(pl.Int64, strict=False)
    retry = values.is_null() & text.is_not_null()
    if retry.any():
        decimals = text.cast(pl.Float64, strict=False)
        whole = decimals.cast(pl.Int64, strict=False)
        integral = (decimals == decimals.floor()) & whole.is_not_null()
        bad = retry & ~integral.fill_null(False)
        if bad.any():
            _fail(path, bad, text, column, "not an integer", "an integer or an empty field")
        values = values.zip_with(~retry, whole)
    narrow = values.cast(dtype, strict=False)
    bad = narrow.is_null() & values.is_not_null()
    if bad.any():
        _fail(path, bad, text, column, "integer out of range", f"an integer that fits {dtype}")
    return narrow.alias(column)


def read_metadata_csv(path: str | PathLike[str]) -> pl.DataFrame:
    """Read the BIOSCAN-5M metadata CSV into a typed polars frame.

    Args:
        path: The CSV file, e.g. ``bioscan5m/metadata/csv/BIOSCAN_5M_Insect_Dataset_metadata.csv``.

    Returns:
        The 23 metadata columns in the official order, typed as ``POLARS_TYPES``: text columns
        as strings, ``coord-lat``, ``coord-lon``, ``image_measurement_value``,
        ``area_fraction`` and ``scale_factor`` as Float64, ``inferred_ranks`` as Int16 and
        ``index_bioscan_1M_insect`` as Int64. Empty fields and ``no_data`` are null.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataFormatError: A column is missing, the file is not UTF-8 CSV, a ``processid`` is
            empty, a number does not parse, or a ``split`` is not one of the eight partition
            names. The message names the file, line, column and value.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BIOSCAN-5M metadata CSV {path} not found")
    _check_header(path, _header(path))

    try:
        frame = pl.read_csv(
            path,
            columns=list(METADATA_COLUMNS),
            infer_schema=False,
            null_values=list(NULL_VALUES),
            encoding="utf8",
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError as err:
        raise DataFormatError(f"unreadable CSV file: {err}", path=path) from err
    frame = frame.select(METADATA_COLUMNS)

    processid = frame["processid"]
    if processid.null_count():
        _fail(path, processid.is_null(), processid, "processid", "empty value",
              "the specimen's BOLD process ID, e.g. 'GMMVA27218-22'")

    split = frame["split"]
    unknown = ~split.is_in(SPLITS).fill_null(False)
    if unknown.any():
        _fail(path, unknown, split, "split", "unknown split name", f"one of {', '.join(SPLITS)}")

    casts = [_cast_float(path, frame, column) for column in FLOAT_COLUMNS]
    casts += [_cast_int(path, frame, column, POLARS_TYPES[column]) for column in INT_COLUMNS]
    return frame.with_columns(casts)
