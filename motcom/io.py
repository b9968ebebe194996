"""Readers of the MOTChallenge text files: ``seqinfo.ini``, ``gt.txt``, tracker output, ``det.txt``.

Each text reader parses the whole file at once with ``pyarrow.csv`` and checks the values with
numpy. Only when that fast pass fails, or a check finds a problem, does a line-by-line pass run
again over the file, so that the :class:`~harness.errors.DataFormatError` names the exact line.

Accepted: comma or whitespace separated values (the first non-blank line decides, as TrackEval
1.3.0's ``csv.Sniffer`` does), CRLF or LF line ends, a last line without a newline, one trailing
comma per line and an empty file (no boxes). Also accepted, where TrackEval 1.3.0 raises: blank
lines (skipped), a UTF-8 byte order mark and 6-column tracker files.

Each rejection names the file, line, field and value. Rejected are: fewer columns than the
format needs, a line with a different number of fields than the first, missing or non-numeric
values, NaN or infinity, and frames outside ``1..seqLength``. So are non-integer or negative
frames and ids, negative widths or heights, an id used twice in one frame, and tracker rows whose
eighth column (read as a class by TrackEval) is 2 or more.
"""

from __future__ import annotations

import configparser
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from harness.errors import DataFormatError
from motcom.data import GroundTruth, SequenceInfo, Tracks

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

GT_FIELDS = ("frame", "id", "left", "top", "width", "height", "flag", "class", "visibility")
"""Columns of a MOT16/MOT17/MOT20 ``gt.txt`` file."""

MOT15_GT_FIELDS = ("frame", "id", "left", "top", "width", "height", "flag", "x", "y", "z")
"""Columns of a MOT15 ``gt.txt`` file: world coordinates (``-1`` in 2D data) in place of class
and visibility."""

TRACKER_FIELDS = ("frame", "id", "left", "top", "width", "height", "conf", "x", "y", "z")
"""Columns of a tracker result file and of ``det.txt`` (whose id is ``-1``)."""

_BOM = b"\xef\xbb\xbf"
_WHITESPACE_RUN = re.compile(rb"[ \t]+")
_EDGE_COMMA = re.compile(rb"(?m)^,|,(?=\r?$)")
_FIRST_VALUE = re.compile(rb"[^\s][^\n]*")


class _NeedsLinePass(Exception):
    """The fast pass cannot read the file or found a problem it cannot place on a line."""


@dataclass(frozen=True)
class _Rows:
    """The numeric content of a text file, one row per non-blank line."""

    values: np.ndarray  # float64, shape (n, k)
    line_numbers: np.ndarray | None = None  # 1-based; only known after the line-by-line pass
    tokens: list[list[str]] | None = None  # the text of every field, same condition


@dataclass(frozen=True)
class _Format:
    """Column requirements of one kind of file."""

    kind: str  # "ground truth", "tracker" or "detections"
    min_columns: int
    min_columns_text: str

    def field_names(self, columns: int) -> tuple[str, ...]:
        if self.kind == "ground truth" and columns == 10:
            base = MOT15_GT_FIELDS
        elif self.kind == "ground truth":
            base = GT_FIELDS
        else:
            base = TRACKER_FIELDS
        names = base[:columns]
        return names + tuple(f"column {i + 1}" for i in range(len(names), columns))


_GT_FORMAT = _Format("ground truth", 8, "frame, id, left, top, width, height, flag, class")
_TRACKER_FORMAT = _Format("tracker", 6, "frame, id, left, top, width, height")
_DETECTION_FORMAT = _Format("detections", 7, "frame, id, left, top, width, height, conf")


# ---------------------------------------------------------------------------------------------
# seqinfo.ini


def read_seqinfo(path: PathLike) -> SequenceInfo:
    """Read the ``[Sequence]`` section of a ``seqinfo.ini`` file.

    Only ``seqLength`` is required (it is all TrackEval reads); ``name`` defaults to the name of
    the folder that contains the file. Keys are case-insensitive.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        harness.errors.DataFormatError: the section or ``seqLength`` is missing, or a number is
            not a valid number.
    """
    path = Path(path)
    return seqinfo_from_bytes(path.read_bytes(), source=path, default_name=path.parent.name)


def seqinfo_from_bytes(data: bytes, *, source: PathLike, default_name: str) -> SequenceInfo:
    """Parse the bytes of a ``seqinfo.ini`` file; ``source`` names it in error messages.

    ``default_name`` is the sequence name used when the file has no ``name`` key. See
    :func:`read_seqinfo`.
    """
    path = source
    text = data.removeprefix(_BOM).decode("utf-8", errors="replace")
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise DataFormatError(
            f"not a valid INI file: {exc.message.splitlines()[0]}",
            path=path,
            expected="a [Sequence] section of key=value lines",
        ) from None
    if not parser.has_section("Sequence"):
        raise DataFormatError(
            "no [Sequence] section", path=path, expected="a [Sequence] section with seqLength"
        )
    section = parser["Sequence"]

    def number(key: str, kind: type, *, required: bool = False, minimum: float = 1):
        raw = section.get(key)
        if raw is None or raw.strip() == "":
            if required:
                raise DataFormatError(
                    f"missing key {key!r} in [Sequence]",
                    path=path,
                    expected=f"a line '{key}=<integer >= {minimum}>'",
                )
            return None
        try:
            value = kind(raw.strip())
        except ValueError:
            value = None
        if value is None or not np.isfinite(value) or value < minimum:
            kind_text = "an integer" if kind is int else "a number"
            raise DataFormatError(
                f"invalid value of {key!r}",
                path=path,
                line=_ini_line(text, key),
                field=key,
                value=raw.strip(),
                expected=f"{kind_text} >= {minimum}",
            )
        return value

    return SequenceInfo(
        name=section.get("name", "").strip() or default_name,
        seq_length=number("seqLength", int, required=True),
        frame_rate=number("frameRate", float, minimum=0),
        im_width=number("imWidth", int),
        im_height=number("imHeight", int),
        im_dir=section.get("imDir", "img1").strip() or "img1",
        im_ext=section.get("imExt", ".jpg").strip() or ".jpg",
    )


def _ini_line(text: str, key: str) -> int | None:
    """Return the 1-based line of ``key=...`` in an INI text, for error messages."""
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*[=:]", re.IGNORECASE)
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


# ---------------------------------------------------------------------------------------------
# Text files of boxes


def read_ground_truth(path: PathLike, *, seq_length: int | None = None) -> GroundTruth:
    """Read a ground-truth file (``gt/gt.txt``).

    9 columns (MOT16, MOT17, MOT20: ``frame, id, left, top, width, height, flag, class,
    visibility``) or 10 columns (MOT15: ``..., flag, x, y, z``, read with class 1 and
    visibility 1 as TrackEval does for MOT15). 8 columns are read with visibility 1, and
    columns after the ninth of 11 or more (e.g. MOTSynth's world coordinates) are ignored.

    Args:
        path: the file.
        seq_length: the sequence's ``seqLength``; frames above it are rejected.

    Raises:
        harness.errors.DataFormatError: a line breaks the format (see the module docstring).
    """
    path = Path(path)
    return ground_truth_from_bytes(path.read_bytes(), source=path, seq_length=seq_length)


def ground_truth_from_bytes(
    data: bytes, *, source: PathLike, seq_length: int | None = None
) -> GroundTruth:
    """Parse the bytes of a ground-truth file; ``source`` names it in error messages.

    The arrays of the result are read-only. See :func:`read_ground_truth`.
    """
    rows = _read_rows(data, source, _GT_FORMAT, seq_length)
    values = rows.values
    columns = values.shape[1] if values.ndim == 2 else 9
    n = values.shape[0]
    if columns == 10:
        cls = np.ones(n, np.int64)
        visibility = np.ones(n, np.float64)
    else:
        cls = values[:, 7].astype(np.int64)
        visibility = values[:, 8].copy() if columns >= 9 else np.ones(n, np.float64)
    gt = GroundTruth(
        frame=values[:, 0].astype(np.int64),
        id=values[:, 1].astype(np.int64),
        boxes=values[:, 2:6].copy(),
        flag=values[:, 6].copy(),
        cls=cls,
        visibility=visibility,
    )
    # Read-only arrays let the evaluation reuse its preprocessing of this gt for every tracker
    # evaluated against it (MOT17's DPM, FRCNN and SDP copies share one gt).
    for array in (gt.frame, gt.id, gt.boxes, gt.flag, gt.cls, gt.visibility):
        array.setflags(write=False)
    return gt


def read_tracks(path: PathLike, *, seq_length: int | None = None) -> Tracks:
    """Read a tracker result file (``<seq>.txt``): 10 columns, 6 or more accepted.

    ``conf`` is 1.0 where the file has only 6 columns.

    NOTE: TrackEval 1.3.0 crashes on a 6-column file with an uncaught IndexError; this reader
    accepts it.

    Args:
        path: the file.
        seq_length: the sequence's ``seqLength``; frames above it are rejected.

    Raises:
        harness.errors.DataFormatError: a line breaks the format (see the module docstring).
    """
    path = Path(path)
    return tracks_from_bytes(path.read_bytes(), source=path, seq_length=seq_length)


def tracks_from_bytes(data: bytes, *, source: PathLike, seq_length: int | None = None) -> Tracks:
    """Parse the bytes of a tracker result file; see :func:`read_tracks`."""
    rows = _read_rows(data, source, _TRACKER_FORMAT, seq_length)
    return _to_tracks(rows.values)


def read_detections(path: PathLike) -> Tracks:
    """Read public detections (``det/det.txt``: ``frame, -1, left, top, width, height, score,
    ...``).

    The ids are returned as in the file (``-1``) and the score in ``conf``; a raw detector score
    may exceed 1.

    Raises:
        harness.errors.DataFormatError: a line breaks the format.
    """
    path = Path(path)
    return detections_from_bytes(path.read_bytes(), source=path)


def detections_from_bytes(data: bytes, *, source: PathLike) -> Tracks:
    """Parse the bytes of a ``det.txt`` file; see :func:`read_detections`."""
    rows = _read_rows(data, source, _DETECTION_FORMAT, None)
    return _to_tracks(rows.values)


def _to_tracks(values: np.ndarray) -> Tracks:
    n = values.shape[0]
    conf = values[:, 6].copy() if values.shape[1] >= 7 else np.ones(n, np.float64)
    return Tracks(
        frame=values[:, 0].astype(np.int64),
        id=values[:, 1].astype(np.int64),
        boxes=np.ascontiguousarray(values[:, 2:6]),
        conf=conf,
    )


def _read_rows(data: bytes, source: PathLike, fmt: _Format, seq_length: int | None) -> _Rows:
    """Parse and check a whole file, with the line-by-line pass only where needed."""
    data = data.removeprefix(_BOM)
    first = _first_data_line(data)
    if first is None:
        return _Rows(np.zeros((0, 9 if fmt is _GT_FORMAT else 10), np.float64))
    comma = b"," in first

    try:
        rows = _fast_rows(data, first, comma, fmt)
        _check_rows(rows, source, fmt, seq_length)
        return rows
    except _NeedsLinePass:
        logger.debug("reading %s line by line to locate a problem", source)

    rows = _line_rows(data, source, comma, fmt)
    _check_rows(rows, source, fmt, seq_length)
    return rows


def count_columns(data: bytes) -> int:
    """Return the number of fields on the first non-blank line of a text file, 0 if none.

    A trailing comma does not count, as in the readers.
    """
    first = _first_data_line(data.removeprefix(_BOM))
    if first is None:
        return 0
    line = first.decode("utf-8", errors="replace")
    return len(_split_fields(line, "," in line))


def _first_data_line(data: bytes) -> bytes | None:
    match = _FIRST_VALUE.search(data)
    return None if match is None else match.group().strip()


_THREADED_PARSE_BYTES = 64 * 2**20


def _fast_rows(data: bytes, first: bytes, comma: bool, fmt: _Format) -> _Rows:
    """Parse the whole buffer with pyarrow; raise :class:`_NeedsLinePass` on anything odd."""
    if not comma:
        data = _EDGE_COMMA.sub(b"", _WHITESPACE_RUN.sub(b",", data))
        first = _EDGE_COMMA.sub(b"", _WHITESPACE_RUN.sub(b",", first))

    trailing_comma = first.endswith(b",")
    columns = first.count(b",") + 1
    kept = columns - 1 if trailing_comma else columns
    if kept < fmt.min_columns:
        raise _NeedsLinePass

    names = [f"c{i}" for i in range(columns)]
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            # One thread: for files of a few MB, starting the pool costs more than it saves
            # (about 3x slower on a MOT17 gt file, measured with pyarrow 26).
            read_options=pacsv.ReadOptions(
                column_names=names, use_threads=len(data) > _THREADED_PARSE_BYTES
            ),
            parse_options=pacsv.ParseOptions(delimiter=",", quote_char=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.float64() for name in names[:kept]}
            ),
            # The values are copied to numpy right away, so the system allocator, which hands
            # freed memory back, keeps the peak lower than pyarrow's caching default pool.
            memory_pool=pa.system_memory_pool(),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise _NeedsLinePass from exc

    if trailing_comma and table.column(names[-1]).null_count != len(table):
        raise _NeedsLinePass
    if any(table.column(name).null_count for name in names[:kept]):
        raise _NeedsLinePass
    if table.num_rows == 0:
        return _Rows(np.zeros((0, kept), np.float64))

    # Straight from the Arrow data buffers (no nulls, checked above): pyarrow's to_numpy imports
    # pandas on first use, which takes longer than parsing a whole MOT17 train set.
    values = np.empty((table.num_rows, kept), np.float64)
    for index, name in enumerate(names[:kept]):
        start = 0
        for chunk in table.column(name).chunks:
            data_buffer = chunk.buffers()[1]
            values[start:start + len(chunk), index] = np.frombuffer(
                data_buffer, dtype=np.float64, count=len(chunk), offset=chunk.offset * 8)
            start += len(chunk)
    return _Rows(values)


def _line_rows(data: bytes, source: PathLike, comma: bool, fmt: _Format) -> _Rows:
    """Parse the file line by line, raising on the first line that cannot be read.

    When the first line has no number in it, the error message adds that this header line must
    be removed.
    """
    text = data.decode("utf-8", errors="replace")
    lines = [(number, line) for number, line in enumerate(text.split("\n"), start=1)
             if line.strip()]
    if not lines or not _is_header(_split_fields(lines[0][1], comma)):
        return _parse_lines(text, source, comma, fmt)

    try:
        return _parse_lines(text, source, comma, fmt)
    except DataFormatError as exc:
        hint = (f"Line {lines[0][0]} has no number, so it looks like a header line, but "
                "MOTChallenge files have no header line: remove it")
        raise DataFormatError(
            exc.problem,
            path=exc.path,
            line=exc.line,
            field=exc.field,
            value=exc.value,
            expected=f"{exc.expected}. {hint}" if exc.expected else hint,
        ) from None


def _split_fields(line: str, comma: bool) -> list[str]:
    """Split one line into fields; one trailing comma is dropped."""
    if not comma:
        return line.split()
    fields = [field.strip() for field in line.split(",")]
    if len(fields) > 1 and fields[-1] == "":
        fields.pop()
    return fields


def _is_header(fields: list[str]) -> bool:
    """Return whether a line's fields hold text but no number, like ``frame,id,...``."""
    if not any(fields):
        return False
    for field in fields:
        try:
            float(field)
        except ValueError:
            continue
        return False
    return True


def _parse_lines(text: str, source: PathLike, comma: bool, fmt: _Format) -> _Rows:
    tokens: list[list[str]] = []
    numbers: list[int] = []
    columns: int | None = None
    first_line = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        fields = _split_fields(line, comma)
        if columns is None:
            columns, first_line = len(fields), number
            if columns < fmt.min_columns:
                raise DataFormatError(
                    f"{fmt.kind} line has {columns} fields",
                    path=source,
                    line=number,
                    value=line.strip(),
                    expected=f"at least {fmt.min_columns} ({fmt.min_columns_text})",
                )
        elif len(fields) != columns:
            problem = f"line has {len(fields)} fields but line {first_line} has {columns}"
            expected = f"{columns} fields on every line"
            if _other_separator(line, comma):
                separator, first_separator = (("whitespace", "commas") if comma
                                              else ("commas", "whitespace"))
                problem += (f": its values are separated by {separator}, but line "
                            f"{first_line}'s by {first_separator}")
                expected = f"the separator of line {first_line} ({first_separator}) on every line"
            raise DataFormatError(
                problem,
                path=source,
                line=number,
                value=line.strip(),
                expected=expected,
            )
        tokens.append(fields)
        numbers.append(number)

    assert columns is not None  # _read_rows returns early for a file without values
    names = fmt.field_names(columns)
    values = np.empty((len(tokens), columns), np.float64)
    for row, fields in enumerate(tokens):
        for column, field in enumerate(fields):
            values[row, column] = _parse_number(field, source, numbers[row], names[column])
    return _Rows(values, np.asarray(numbers, np.int64), tokens)


def _other_separator(line: str, comma: bool) -> bool:
    """Return whether a line uses the separator that the file's first line does not use."""
    if comma:
        return "," not in line and len(line.split()) > 1
    return "," in line


def _parse_number(field: str, source: PathLike, line: int, name: str) -> float:
    if field == "":
        raise DataFormatError(
            "missing value", path=source, line=line, field=name, expected="a number"
        )
    try:
        if "_" in field:  # Python accepts 1_000; no MOTChallenge tool does
            raise ValueError(field)
        return float(field)
    except ValueError:
        raise DataFormatError(
            "not a number", path=source, line=line, field=name, value=field, expected="a number"
        ) from None


# ---------------------------------------------------------------------------------------------
# Checks


@dataclass(frozen=True)
class _Problem:
    row: int
    column: int
    problem: str
    expected: str
    first_row: int | None = None  # for duplicates: the row of the first occurrence


def _check_rows(rows: _Rows, source: PathLike, fmt: _Format, seq_length: int | None) -> None:
    """Raise a DataFormatError for the first line that breaks a rule of ``fmt``.

    Raises:
        _NeedsLinePass: a rule is broken but ``rows`` has no line numbers.
    """
    values = rows.values
    if values.shape[0] == 0:
        return
    columns = values.shape[1]
    names = fmt.field_names(columns)
    problems = _find_problems(values, fmt, seq_length)
    if not problems:
        return
    if rows.line_numbers is None or rows.tokens is None:
        raise _NeedsLinePass

    problem = min(problems, key=lambda p: p.row)
    line = int(rows.line_numbers[problem.row])
    text = problem.problem
    if problem.first_row is not None:
        text += f" (first used on line {int(rows.line_numbers[problem.first_row])})"
    raise DataFormatError(
        text,
        path=source,
        line=line,
        field=names[problem.column],
        value=rows.tokens[problem.row][problem.column],
        expected=problem.expected,
    )


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _find_problems(values: np.ndarray, fmt: _Format, seq_length: int | None) -> list[_Problem]:
    """Return the first offending row of every rule that ``values`` breaks."""
    problems: list[_Problem] = []

    def add(mask: np.ndarray, column: int, problem: str, expected: str) -> None:
        row = _first(mask)
        if row is not None:
            problems.append(_Problem(row, column, problem, expected))

    used = _used_columns(fmt, values.shape[1])
    for column in used:
        add(~np.isfinite(values[:, column]), column, "not a finite number", "a finite number")

    frame = values[:, 0]
    with np.errstate(invalid="ignore"):
        add(frame != np.round(frame), 0, "frame is not an integer", "an integer >= 1")
        add(frame < 1, 0, "frame is below 1 (frames are 1-based)", "an integer >= 1")
        if seq_length is not None:
            add(
                frame > seq_length,
                0,
                f"frame is past the end of the sequence ({seq_length} frames)",
                f"an integer from 1 to {seq_length} (seqLength)",
            )

        if fmt is not _DETECTION_FORMAT:
            ids = values[:, 1]
            add(ids != np.round(ids), 1, "id is not an integer", "an integer >= 0")
            add(ids < 0, 1, "negative id", "an integer >= 0")

        add(values[:, 4] < 0, 4, "negative width", "a number >= 0")
        add(values[:, 5] < 0, 5, "negative height", "a number >= 0")

        if fmt is _GT_FORMAT and values.shape[1] != 10:
            cls = values[:, 7]
            add(cls != np.round(cls), 7, "class is not an integer", "an integer class id")
        if fmt is _TRACKER_FORMAT and values.shape[1] >= 8:
            # TrackEval 1.3.0 truncates column 8 with astype(int) and raises when the result
            # is above 1, so 1.9, 0 and -3 pass and every value from 2 up is rejected.
            add(
                np.trunc(values[:, 7]) > 1,
                7,
                "column 8 is read as a class by the MOTChallenge evaluation (TrackEval), which "
                "truncates it to an integer and rejects a value of 2 or more because only "
                "pedestrians (class 1) can be evaluated",
                "a value below 2, e.g. -1 (unused x) or 1 (pedestrian)",
            )

    if fmt is not _DETECTION_FORMAT:
        duplicate = _first_duplicate(values[:, 0], values[:, 1])
        if duplicate is not None:
            second, first = duplicate
            problems.append(
                _Problem(
                    second,
                    1,
                    "id used twice in the same frame",
                    "every id at most once per frame",
                    first_row=first,
                )
            )
    return problems


def _used_columns(fmt: _Format, columns: int) -> Sequence[int]:
    if fmt is _GT_FORMAT:
        return range(min(columns, 9)) if columns != 10 else range(7)
    if fmt is _TRACKER_FORMAT:
        return range(min(columns, 8))
    return range(7)


def _first_duplicate(frame: np.ndarray, ids: np.ndarray) -> tuple[int, int] | None:
    """Return ``(row of the first repeated (frame, id) pair in file order, row of its first
    use)``, or None."""
    # Files sorted by frame, then id (tracker output) or by id, then frame (MOTChallenge gt)
    # need no sort: pairs in strictly increasing order are all different.
    if _strictly_increasing(frame, ids) or _strictly_increasing(ids, frame):
        return None
    order = np.lexsort((ids, frame))  # stable: equal pairs stay in file order
    same = (frame[order][1:] == frame[order][:-1]) & (ids[order][1:] == ids[order][:-1])
    if not same.any():
        return None
    positions = np.flatnonzero(same) + 1
    second_rows = order[positions]
    pick = int(np.argmin(second_rows))
    position = int(positions[pick])
    # Walk back to the first row of this (frame, id) group.
    start = position
    while start > 0 and same[start - 1]:
        start -= 1
    return int(order[position]), int(order[start])


def _strictly_increasing(major: np.ndarray, minor: np.ndarray) -> bool:
    """Return whether the ``(major, minor)`` pairs increase strictly, row by row.

    NaN compares false, so a column with NaN gives False.
    """
    later = major[1:] > major[:-1]
    later |= (major[1:] == major[:-1]) & (minor[1:] > minor[:-1])
    return bool(later.all())
