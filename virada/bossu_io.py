"""Read and write the Bossu detector's official files: ``<video>_Results.csv`` and
``<video>_Settings.txt``.

The per-frame CSV is the one the authors' C++ (``Bossu/BossuRainGauge.cpp`` in
``chrisbahnsen/aau-virada``) writes: semicolon-separated, this header line (note the spaces
before ``Frame#`` and ``GaussMean``)::

    settingsFile;InputVideo; Frame#; GaussMean;GaussStdDev;GaussMixProp;Goodness-Of-Fit Value;
    kalmanGaussMean;kalmanGaussStdDev;kalmanGaussMixProp;Rain Intensity;Kalman Rain Intensity;
    EM Rain Detected;Kalman Rain Detected

then one empty line per warm-up frame, then one row per later frame. Numbers are C++
``std::to_string`` output (``%f``); a frame without blobs has ``-1`` in the seven mixture and
Kalman columns and ``0`` in the last four. An older version of the C++
(``chrisbahnsen/rainremoval``, ``BossuRainAnalysis``) wrote the same columns without the two
``Rain Detected`` ones. Such files are read with the detections missing (``has_detections`` is
False), because the official analysis scripts read those columns and have no rule for older
files.

The settings file is OpenCV ``FileStorage`` YAML (``%YAML:1.0``) with the keys ``c``,
``minimumBlobSize``, ``maximumBlobSize``, ``dm``, ``maxGoFDifference``, ``minimumGaussianSurface``,
``emMaxIterations``, ``saveImg``, ``verbose`` and ``debug``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from os import PathLike
from pathlib import Path

import numpy as np
import polars as pl

from harness import atomic
from harness.errors import DataFormatError
from virada.bossu import BossuParameters, FrameResult

__all__ = [
    "CSV_COLUMNS",
    "OLD_CSV_COLUMNS",
    "RESULT_COLUMNS",
    "BossuResults",
    "read_results_csv",
    "read_settings",
    "settings_text",
    "write_results_csv",
    "write_settings",
]

logger = logging.getLogger(__name__)

CSV_COLUMNS = (
    "settingsFile",
    "InputVideo",
    " Frame#",
    " GaussMean",
    "GaussStdDev",
    "GaussMixProp",
    "Goodness-Of-Fit Value",
    "kalmanGaussMean",
    "kalmanGaussStdDev",
    "kalmanGaussMixProp",
    "Rain Intensity",
    "Kalman Rain Intensity",
    "EM Rain Detected",
    "Kalman Rain Detected",
)
"""The official header fields, spaces included."""

OLD_CSV_COLUMNS = CSV_COLUMNS[:12]
"""The header fields of the older C++ version, without the two detection columns."""

RESULT_COLUMNS = (
    "frame",
    "gauss_mean",
    "gauss_std",
    "gauss_mix_prop",
    "goodness_of_fit",
    "kalman_mean",
    "kalman_std",
    "kalman_mix_prop",
    "rain_intensity",
    "kalman_rain_intensity",
    "em_rain",
    "kalman_rain",
)
"""Columns of :attr:`BossuResults.table`, in the order of the CSV's columns 3 to 14."""

_SETTINGS_KEYS = {
    "c": "c",
    "minimumBlobSize": "minimum_blob_size",
    "maximumBlobSize": "maximum_blob_size",
    "dm": "dm",
    "maxGoFDifference": "max_gof_difference",
    "minimumGaussianSurface": "minimum_gaussian_surface",
    "emMaxIterations": "em_max_iterations",
}
_FLAG_KEYS = ("saveImg", "verbose", "debug")
_INTEGER_KEYS = {"c", "minimumBlobSize", "maximumBlobSize", "emMaxIterations"}


@dataclass
class BossuResults:
    """The contents of one ``_Results.csv``."""

    path: Path
    settings_file: str
    """The first column of the first row: the settings file the C++ ran with."""
    input_video: str
    table: pl.DataFrame
    """One row per output frame with :data:`RESULT_COLUMNS`; ``frame`` is the 1-based
    ``Frame#``. ``em_rain`` and ``kalman_rain`` are null for the older column set."""
    has_detections: bool

    @property
    def frame_indices(self) -> np.ndarray:
        """0-based frame indices of the rows (``Frame# - 1``, as ``evaluateBossu.py`` uses)."""
        return self.table["frame"].to_numpy() - 1


def _format_number(value: float) -> str:
    """Format like C++ ``std::to_string(double)``, i.e. ``%f``."""
    return f"{value:f}"


def _format_row(row: FrameResult, settings_file: str, input_video: str) -> str:
    prefix = f"{settings_file};{input_video}; {row.frame}; "
    if row.blobs == 0 and row.gauss_mean == -1.0:
        # The C++ writes integers through std::to_string(int) for frames without blobs.
        return prefix + ";".join(["-1"] * 7 + ["0"] * 4)
    values = (
        row.gauss_mean,
        row.gauss_std,
        row.gauss_mix_prop,
        row.goodness_of_fit,
        row.kalman_mean,
        row.kalman_std,
        row.kalman_mix_prop,
        row.rain_intensity,
        row.kalman_rain_intensity,
        float(row.em_rain),
        float(row.kalman_rain),
    )
    return prefix + ";".join(_format_number(value) for value in values)


def write_results_csv(
    path: str | PathLike[str],
    rows: Iterable[FrameResult],
    *,
    settings_file: str,
    input_video: str,
    warm_up_frames: int = 500,
) -> Path:
    """Write the per-frame results in the official layout, atomically.

    Args:
        path: The CSV to write, by convention ``<video>_Results.csv``.
        rows: The detector's results in frame order.
        settings_file: First column of every row (the C++ writes ``<output folder>/<settings>``).
        input_video: Second column of every row (the video's file name).
        warm_up_frames: Number of empty lines after the header, one per warm-up frame.
    """
    path = Path(path)
    buffer = io.StringIO()
    buffer.write(";".join(CSV_COLUMNS) + "\n")
    buffer.write("\n" * warm_up_frames)
    for row in rows:
        buffer.write(_format_row(row, settings_file, input_video) + "\n")
    atomic.write_text(path, buffer.getvalue())
    return path


def read_results_csv(path: str | PathLike[str]) -> BossuResults:
    """Read a ``_Results.csv`` of either column set; empty lines are skipped.

    Raises:
        DataFormatError: The header is neither column set, or a row has the wrong number of
            fields, a non-numeric value or a detection other than 0 or 1. The message names
            the file, the 1-based line and the field.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError as error:
        raise DataFormatError(
            f"not UTF-8 text at byte {error.start}", path=path, expected="a Bossu _Results.csv"
        ) from error
    lines = text.splitlines()
    if not lines:
        raise DataFormatError("empty file", path=path, expected="a Bossu _Results.csv header")

    header = tuple(lines[0].split(";"))
    if header == CSV_COLUMNS:
        has_detections = True
    elif header == OLD_CSV_COLUMNS:
        has_detections = False
    else:
        raise DataFormatError(
            "unknown header",
            path=path,
            line=1,
            value=lines[0][:200],
            expected=f"the official header {';'.join(CSV_COLUMNS)!r} or its first 12 fields",
        )

    width = len(header)
    settings_file = ""
    input_video = ""
    values: list[list[float]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(";")
        if len(parts) != width:
            raise DataFormatError(
                f"row has {len(parts)} fields",
                path=path,
                line=number,
                expected=f"{width} semicolon-separated fields like the header",
            )
        if not values:
            settings_file, input_video = parts[0], parts[1]
        values.append(_parse_row(parts, path, number, header))

    table = _build_table(values, has_detections)
    return BossuResults(
        path=path,
        settings_file=settings_file,
        input_video=input_video,
        table=table,
        has_detections=has_detections,
    )


def _parse_row(parts: list[str], path: Path, number: int, header: tuple[str, ...]) -> list[float]:
    row: list[float] = []
    for position in range(2, len(parts)):
        field = header[position].strip()
        text = parts[position].strip()
        if position == 2:
            if not text.isdigit() or int(text) < 1:
                raise DataFormatError(
                    "invalid frame number",
                    path=path,
                    line=number,
                    field=field,
                    value=parts[position],
                    expected="an integer >= 1",
                )
            row.append(float(int(text)))
            continue
        try:
            value = float(text)
        except ValueError:
            raise DataFormatError(
                "invalid number",
                path=path,
                line=number,
                field=field,
                value=parts[position],
                expected="a decimal number such as 0.123456",
            ) from None
        if position >= 12 and value not in (0.0, 1.0):
            raise DataFormatError(
                "invalid detection",
                path=path,
                line=number,
                field=field,
                value=parts[position],
                expected="0 or 1",
            )
        row.append(value)
    return row


def _build_table(values: list[list[float]], has_detections: bool) -> pl.DataFrame:
    width = 12 if has_detections else 10
    array = np.asarray(values, dtype=np.float64).reshape(-1, width)
    columns: dict[str, pl.Series] = {"frame": pl.Series("frame", array[:, 0].astype(np.int64))}
    for index, name in enumerate(RESULT_COLUMNS[1:10], start=1):
        columns[name] = pl.Series(name, array[:, index])
    for index, name in ((10, "em_rain"), (11, "kalman_rain")):
        if has_detections:
            columns[name] = pl.Series(name, array[:, index] == 1.0)
        else:
            columns[name] = pl.Series(name, [None] * array.shape[0], dtype=pl.Boolean)
    return pl.DataFrame(columns)


def settings_text(parameters: BossuParameters) -> str:
    """Return the settings file text that OpenCV's ``FileStorage`` writes for ``parameters``."""

    def real(value: float) -> str:
        # FileStorage writes a float field as a double: "1." when integral, else "%.16e".
        number = float(np.float32(value))
        return f"{int(number)}." if number.is_integer() else f"{number:.16e}"

    lines = [
        "%YAML:1.0",
        f"c: {parameters.c}",
        f"minimumBlobSize: {parameters.minimum_blob_size}",
        f"maximumBlobSize: {parameters.maximum_blob_size}",
        f"dm: {real(parameters.dm)}",
        f"maxGoFDifference: {real(parameters.max_gof_difference)}",
        f"minimumGaussianSurface: {real(parameters.minimum_gaussian_surface)}",
        f"emMaxIterations: {parameters.em_max_iterations}",
        "saveImg: 0",
        "verbose: 0",
        "debug: 0",
    ]
    return "\n".join(lines) + "\n"


def write_settings(path: str | PathLike[str], parameters: BossuParameters) -> Path:
    """Write ``parameters`` as a ``_Settings.txt`` (atomically) and return its path."""
    path = Path(path)
    atomic.write_text(path, settings_text(parameters))
    return path


def read_settings(
    path: str | PathLike[str], base: BossuParameters | None = None
) -> BossuParameters:
    """Read a ``_Settings.txt`` into detector parameters.

    Like the C++ ``loadParameters``, a missing key, ``c: 0``, a negative minimum blob size and
    a non-positive value of the other keys keep the value of ``base`` (the C++ defaults when
    ``base`` is None).

    Raises:
        DataFormatError: The first line is not ``%YAML:1.0``, a line is not ``key: value``, a
            key is unknown, or a value is not a number (an integer for integer keys).
    """
    path = Path(path)
    parameters = base or BossuParameters()
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].strip() != "%YAML:1.0":
        raise DataFormatError(
            "missing YAML directive",
            path=path,
            line=1,
            value=lines[0] if lines else "",
            expected="'%YAML:1.0' as the first line (OpenCV FileStorage)",
        )

    found: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        stripped = line.strip()
        if not stripped or stripped == "---" or stripped.startswith("#"):
            continue
        key, separator, text = stripped.partition(":")
        key = key.strip()
        if not separator:
            raise DataFormatError(
                "line is not 'key: value'",
                path=path,
                line=number,
                value=line,
                expected="key: value",
            )
        if key not in _SETTINGS_KEYS and key not in _FLAG_KEYS:
            valid = ", ".join([*_SETTINGS_KEYS, *_FLAG_KEYS])
            raise DataFormatError(
                "unknown settings key", path=path, line=number, field=key, expected=valid
            )
        found[key] = _parse_setting(key, text.strip(), path, number)

    changes: dict[str, float] = {}
    for key, name in _SETTINGS_KEYS.items():
        if key not in found:
            continue
        value = found[key]
        if key == "c":
            accepted = value != 0
        elif key == "minimumBlobSize":
            accepted = value >= 0
        else:
            accepted = value > 0
        if accepted:
            changes[name] = int(value) if key in _INTEGER_KEYS else value
    if changes.get("minimum_blob_size") == 0:
        # A blob has at least one pixel, so a minimum of 0 keeps the same blobs as 1.
        changes["minimum_blob_size"] = 1
    return replace(parameters, **changes)


def _parse_setting(key: str, text: str, path: Path, number: int) -> float:
    integer = key in _INTEGER_KEYS or key in _FLAG_KEYS
    try:
        return float(int(text)) if integer else float(text)
    except ValueError:
        expected = "an integer" if integer else "a number such as 0.06 or 5.9999998658895493e-02"
        raise DataFormatError(
            "invalid value", path=path, line=number, field=key, value=text, expected=expected
        ) from None
