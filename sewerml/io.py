"""Readers of the official Sewer-ML annotation CSVs.

``SewerML_Train.csv`` and ``SewerML_Val.csv`` have one row per image with ``Filename``, the 17
defect columns, ``Defect``, ``VA``, ``ND`` and ``WaterLevel`` (percent), and possibly
``Shape`` and ``Material``, which CT-GNN reads. ``SewerML_Test.csv`` has the single column
``Filename``. Columns are selected by name, as the official scripts do, because their order
differs between copies.
Lines may end in CRLF (as in the public test CSV) or LF, with or without a UTF-8 BOM.
"""

from __future__ import annotations

import io
from os import PathLike
from pathlib import Path

import polars as pl

from harness.errors import DataFormatError
from sewerml.classes import DEFECT_CODES

__all__ = [
    "BINARY_COLUMNS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "read_labels_csv",
    "read_test_csv",
]

BINARY_COLUMNS: tuple[str, ...] = (*DEFECT_CODES, "Defect", "VA", "ND")
"""Columns whose values must be 0 or 1."""

REQUIRED_COLUMNS: tuple[str, ...] = ("Filename", *BINARY_COLUMNS, "WaterLevel")
"""Columns every labelled CSV must have."""

OPTIONAL_COLUMNS: tuple[str, ...] = ("Shape", "Material")
"""Pipe shape and material codes, read when present (CT-GNN uses them)."""

_BOM = b"\xef\xbb\xbf"


def _read_strings(path: Path) -> pl.DataFrame:
    """Read every column of ``path`` as stripped strings, with BOM and CR removed."""
    raw = path.read_bytes()
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    raw = raw.replace(b"\r\n", b"\n")
    if not raw.strip():
        raise DataFormatError("empty CSV file", path=path, line=1,
                              expected="a header line starting with Filename")
    try:
        frame = pl.read_csv(io.BytesIO(raw), infer_schema=False)
    except pl.exceptions.PolarsError as err:
        raise DataFormatError(f"unreadable CSV file: {err}", path=path) from err
    return frame.select(pl.all().str.strip_chars())


def _check_header(frame: pl.DataFrame, path: Path, required: tuple[str, ...]) -> None:
    for column in required:
        if column not in frame.columns:
            raise DataFormatError(
                f"missing column {column!r} in the header (found: {', '.join(frame.columns)})",
                path=path, line=1, expected=f"the columns {', '.join(required)}",
            )


def _first_line(mask: pl.Series) -> int:
    """Return the 1-based file line of the first true row (the header is line 1)."""
    return int(mask.arg_true()[0]) + 2


def _check_filenames(frame: pl.DataFrame, path: Path) -> None:
    names = frame["Filename"]
    empty = names.is_null() | (names == "")
    if empty.any():
        raise DataFormatError("empty value", path=path, line=_first_line(empty),
                              field="Filename", value="", expected="an image file name")

    duplicated = names.is_duplicated()
    if duplicated.any():
        line = _first_line(duplicated)
        value = names[line - 2]
        first = _first_line(names == value)
        second = int((names == value).arg_true()[1]) + 2
        raise DataFormatError(
            f"duplicate Filename, first on line {first}", path=path, line=second,
            field="Filename", value=value, expected="each Filename on one line only",
        )


def _check_binary(frame: pl.DataFrame, path: Path) -> None:
    for column in BINARY_COLUMNS:
        values = frame[column]
        invalid = ~values.is_in(["0", "1"]).fill_null(False)
        if invalid.any():
            line = _first_line(invalid)
            raise DataFormatError("invalid label", path=path, line=line, field=column,
                                  value=values[line - 2] or "", expected="0 or 1")


def _parse_water_level(frame: pl.DataFrame, path: Path) -> pl.Series:
    text = frame["WaterLevel"]
    numbers = text.cast(pl.Float64, strict=False)
    invalid = (numbers.is_null() | numbers.is_nan() | (numbers < 0) | (numbers > 100)).fill_null(
        True)
    if invalid.any():
        line = _first_line(invalid)
        raise DataFormatError("invalid water level", path=path, line=line, field="WaterLevel",
                              value=text[line - 2] or "", expected="a percentage from 0 to 100")
    return numbers


def _parse_code(frame: pl.DataFrame, column: str, path: Path) -> pl.Series:
    text = frame[column]
    numbers = text.cast(pl.Int8, strict=False)
    invalid = numbers.is_null() | (numbers < 0)
    if invalid.any():
        line = _first_line(invalid)
        raise DataFormatError(f"invalid {column} code", path=path, line=line, field=column,
                              value=text[line - 2] or "", expected="an integer code >= 0")
    return numbers


def read_labels_csv(path: str | PathLike[str]) -> pl.DataFrame:
    """Read ``SewerML_Train.csv`` or ``SewerML_Val.csv``.

    Returns:
        One row per image in file order: ``Filename`` (string), the 17 codes, ``Defect``,
        ``VA`` and ``ND`` (Int8), ``WaterLevel`` (Float64, percent), and ``Shape`` and
        ``Material`` (Int8, null when the file has no such column).

    Raises:
        DataFormatError: A required column is missing, a label is not 0 or 1, a ``Filename``
            is empty or repeated, a ``WaterLevel`` is not a number from 0 to 100, or a
            ``Shape`` or ``Material`` is not an integer. The message names the file, the line,
            the column and the value.
    """
    path = Path(path)
    frame = _read_strings(path)
    _check_header(frame, path, REQUIRED_COLUMNS)
    _check_filenames(frame, path)
    _check_binary(frame, path)
    water_level = _parse_water_level(frame, path)

    columns = [frame["Filename"]]
    columns += [frame[name].cast(pl.Int8) for name in BINARY_COLUMNS]
    columns.append(water_level)
    for name in OPTIONAL_COLUMNS:
        if name in frame.columns:
            columns.append(_parse_code(frame, name, path))
        else:
            columns.append(pl.Series(name, [None] * frame.height, dtype=pl.Int8))
    return pl.DataFrame(columns)


def read_test_csv(path: str | PathLike[str]) -> pl.DataFrame:
    """Read ``SewerML_Test.csv``, whose only column is ``Filename``.

    Raises:
        DataFormatError: The ``Filename`` column is missing, or a file name is empty or
            repeated.
    """
    path = Path(path)
    frame = _read_strings(path)
    _check_header(frame, path, ("Filename",))
    _check_filenames(frame, path)
    return frame.select("Filename")
