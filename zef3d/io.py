"""Readers and writers of the 3D-ZeF20 files: ``gt/gt.txt``, submissions, ``settings.ini``, frames.

Layout of the MOTChallenge archive ``3DZeF20.zip`` (as read by the MOTChallenge ZF3D tools and
the 3D-ZeF baseline code, ``github.com/mapeAAU/3D-ZeF``)::

    3DZeF20/
      train/ZebraFish-01/
        gt/gt.txt                      19 comma separated columns, see GT_COLUMNS
        imgT/000001.jpg ...            top view frames
        imgF/000001.jpg ...            front view frames
        settings.ini                   parameters of the baseline and the aquarium size
        camT_intrinsic.json            top camera: K and Distortion
        camT_references.json           top camera: four image <-> world point pairs
        camF_intrinsic.json, camF_references.json
      test/ZebraFish-05/ ...           the same without gt/
"""

from __future__ import annotations

import configparser
import io
import logging
import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from harness.atomic import write_text
from harness.errors import DataFormatError

logger = logging.getLogger(__name__)

GT_COLUMNS: tuple[str, ...] = (
    "frame", "id", "x", "y", "z",
    "top_x", "top_y", "top_left", "top_top", "top_width", "top_height", "top_occlusion",
    "front_x", "front_y", "front_left", "front_top", "front_width", "front_height",
    "front_occlusion",
)
"""Our names of the 19 ``gt.txt`` columns; the official names are ``frame, id, 3d_x, 3d_y, 3d_z,
camT_x, camT_y, camT_left, camT_top, camT_width, camT_height, camT_occlusion`` and the same
``camF_*`` columns. 3D positions are in centimetres, 2D values in pixels."""

OFFICIAL_GT_COLUMNS: tuple[str, ...] = (
    "frame", "id", "3d_x", "3d_y", "3d_z",
    "camT_x", "camT_y", "camT_left", "camT_top", "camT_width", "camT_height", "camT_occlusion",
    "camF_x", "camF_y", "camF_left", "camF_top", "camF_width", "camF_height", "camF_occlusion",
)

TRACK_COLUMNS: tuple[str, ...] = ("frame", "id", "x", "y", "z")
"""Columns of a submission file (``frame, id, 3d_x, 3d_y, 3d_z``)."""

VIEWS = ("top", "front")

VIEW_FOLDERS = {"top": "imgT", "front": "imgF"}
"""Frame folder of each view in the official archive."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

SEQUENCE_PATTERN = re.compile(r"^ZebraFish-\d+$")

SEARCH_DEPTH = 5
"""Folder levels below the ``--source`` folder that are searched for ``ZebraFish-NN`` folders."""

_FRAME_FOLDER_NAMES = {"imgT", "imgF", "ImgT", "ImgF", "img1"}

_OCCLUSION_COLUMNS = ("top_occlusion", "front_occlusion")
_INTEGER_COLUMNS = ("frame", "id")
# The MOTChallenge ZF3D visualiser reads submissions with the separator ",|;| ".
_TRACK_SEPARATOR = re.compile(r"[,; \t]+")


def read_gt(path: Path) -> pl.DataFrame:
    """Read a 3D-ZeF ``gt/gt.txt`` file into a table with the columns :data:`GT_COLUMNS`.

    Values are comma separated; blank lines are skipped. Rows keep their file order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        harness.errors.DataFormatError: a line has a number of fields other than 19, a value is
            not a finite number, a frame or id is not a positive integer, or an occlusion flag is
            not 0 or 1. The message names the file, line, field and value.
    """
    path = Path(path)
    data = path.read_bytes()
    values = _fast_values(data, len(GT_COLUMNS))
    if values is None or not _valid_gt_values(values):
        values = _parse_gt_lines(data, path)  # raises the error of the first invalid line
    columns = {}
    for index, name in enumerate(GT_COLUMNS):
        column = values[:, index]
        if name in _INTEGER_COLUMNS:
            columns[name] = pl.Series(name, column.astype(np.int64), dtype=pl.Int64)
        elif name in _OCCLUSION_COLUMNS:
            columns[name] = pl.Series(name, column.astype(np.int8), dtype=pl.Int8)
        else:
            columns[name] = pl.Series(name, column, dtype=pl.Float64)
    return pl.DataFrame(columns)


MAX_INTEGER = 2**53
"""Frames and ids must be below this: larger integers have no exact float64 value."""

_INTEGER_EXPECTED = f"an integer from 1 to {MAX_INTEGER - 1}"


def _is_count(value: float) -> bool:
    """Return whether ``value`` is a valid frame or id: a whole number from 1 to 2**53 - 1."""
    return math.isfinite(value) and value == int(value) and 1 <= value < MAX_INTEGER


def _gt_value(field: str, name: str, path: Path, line: int) -> float:
    official = OFFICIAL_GT_COLUMNS[GT_COLUMNS.index(name)]
    try:
        value = float(field)
    except ValueError:
        raise DataFormatError("value is not a number", path=path, line=line, field=official,
                              value=field, expected="a decimal number") from None
    if not math.isfinite(value):
        raise DataFormatError("value is not finite", path=path, line=line, field=official,
                              value=field, expected="a finite decimal number")
    if name in _INTEGER_COLUMNS and not _is_count(value):
        raise DataFormatError("value is not a positive integer", path=path, line=line,
                              field=official, value=field, expected=_INTEGER_EXPECTED)
    if name in _OCCLUSION_COLUMNS and value not in (0.0, 1.0):
        raise DataFormatError("occlusion flag is not 0 or 1", path=path, line=line,
                              field=official, value=field, expected="0 or 1")
    return value


def _parse_gt_lines(data: bytes, path: Path) -> np.ndarray:
    """Parse ``gt.txt`` line by line, raising a located error at the first invalid value."""
    rows: list[list[float]] = []
    text = data.decode("utf-8-sig")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) == len(GT_COLUMNS) + 1 and fields[-1] == "":
            fields = fields[:-1]  # one trailing comma
        if len(fields) != len(GT_COLUMNS):
            raise DataFormatError(
                f"line has {len(fields)} comma separated fields", path=path, line=number,
                value=line.strip(), expected=f"{len(GT_COLUMNS)} fields: "
                + ", ".join(OFFICIAL_GT_COLUMNS))
        rows.append([_gt_value(field, name, path, number)
                     for field, name in zip(fields, GT_COLUMNS, strict=True)])

    return np.array(rows, dtype=np.float64).reshape(-1, len(GT_COLUMNS))


def _fast_values(data: bytes, columns: int | None) -> np.ndarray | None:
    """Parse plain comma separated numbers with pyarrow, or return None to use the line parser.

    ``columns`` is the exact number of columns required (one more, empty, column from trailing
    commas is dropped); ``None`` accepts five or more. Anything pyarrow cannot read as float64
    without nulls (spaces after commas, ``;`` separators, text) returns None.
    """
    if not data.strip():
        return None
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            parse_options=pacsv.ParseOptions(delimiter=",", quote_char=False),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if columns is not None and table.num_columns == columns + 1 \
            and table.column(columns).null_count == table.num_rows:
        table = table.drop_columns([table.column_names[columns]])
    if columns is not None and table.num_columns != columns:
        return None
    if columns is None:
        if table.num_columns < len(TRACK_COLUMNS):
            return None
        table = table.select(list(range(len(TRACK_COLUMNS))))
    arrays = []
    for column in table.columns:
        if column.null_count or not (pa.types.is_integer(column.type)
                                     or pa.types.is_floating(column.type)):
            return None
        try:
            arrays.append(pc.cast(column, pa.float64()).to_numpy())
        except pa.ArrowInvalid:  # an integer beyond 2**53: the line parser reports its line
            return None
    return np.column_stack(arrays) if arrays else None


def _valid_gt_values(values: np.ndarray) -> bool:
    ids = values[:, :2]
    flags = values[:, [GT_COLUMNS.index(name) for name in _OCCLUSION_COLUMNS]]
    return bool(np.all(np.isfinite(values)) and np.all(ids >= 1) and np.all(ids < MAX_INTEGER)
                and np.all(ids == np.floor(ids)) and np.all((flags == 0) | (flags == 1)))


def read_tracks3d(path: Path) -> pl.DataFrame:
    """Read a submission file (``frame, id, x, y, z`` per line) into a table.

    Comma, semicolon or whitespace separated, as the MOTChallenge ZF3D tools accept. Columns after
    ``z`` are ignored. Rows whose x, y or z is NaN are dropped with a logged warning, as the
    MOTChallenge ZF3D visualiser drops them. An empty file gives an empty table.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        harness.errors.DataFormatError: a line has fewer than five fields, a value is not a
            number, or a frame or id is not a positive integer (file, line, field and value).
    """
    path = Path(path)
    data = path.read_bytes()
    values = _fast_values(data, None)
    if values is not None and _valid_track_values(values):
        keep = ~np.isnan(values[:, 2:5]).any(axis=1)
        if not keep.all():
            logger.warning("%s: dropped %d rows whose position is NaN", path,
                           int((~keep).sum()))
        values = values[keep]
        return pl.DataFrame({
            "frame": pl.Series(values[:, 0].astype(np.int64), dtype=pl.Int64),
            "id": pl.Series(values[:, 1].astype(np.int64), dtype=pl.Int64),
            "x": values[:, 2], "y": values[:, 3], "z": values[:, 4],
        })
    return _parse_track_lines(data, path)


def _valid_track_values(values: np.ndarray) -> bool:
    ids = values[:, :2]
    return bool(np.all(np.isfinite(ids)) and np.all(ids >= 1) and np.all(ids < MAX_INTEGER)
                and np.all(ids == np.floor(ids)) and not np.isinf(values[:, 2:5]).any())


def parse_track_rows(text: str, path: Path,
                     names: tuple[str, ...]) -> list[tuple[int, list[str], list[float]]]:
    """Split a tracks file into rows of numbers, raising a located error at the first bad value.

    Fields are separated by commas, semicolons or whitespace, as in submission files; fields
    after ``names`` are ignored and blank lines skipped. The first two names are the frame and
    the id, which must be positive integers.

    Returns:
        ``(line number, fields, values)`` per row, the values as floats in the order of ``names``.

    Raises:
        DataFormatError: a line with fewer fields than ``names``, a value that is not a number,
            or a frame or id that is not a positive integer (file, line, field and value).
    """
    rows: list[tuple[int, list[str], list[float]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip().strip(",;")
        if not stripped:
            continue
        fields = _TRACK_SEPARATOR.split(stripped)
        if len(fields) < len(names):
            raise DataFormatError(
                f"line has {len(fields)} fields", path=path, line=number, value=line.strip(),
                expected=f"at least {len(names)} fields: {', '.join(names)}")
        values = []
        for field, name in zip(fields, names, strict=False):
            try:
                values.append(float(field))
            except ValueError:
                raise DataFormatError("value is not a number", path=path, line=number,
                                      field=name, value=field,
                                      expected="a decimal number") from None
        for name, value, text_value in ((names[0], values[0], fields[0]),
                                        (names[1], values[1], fields[1])):
            if not _is_count(value):
                raise DataFormatError("value is not a positive integer", path=path, line=number,
                                      field=name, value=text_value, expected=_INTEGER_EXPECTED)
        rows.append((number, fields, values))
    return rows


def _parse_track_lines(data: bytes, path: Path) -> pl.DataFrame:
    """Parse a submission line by line, raising a located error at the first invalid value."""
    rows: list[tuple[int, int, float, float, float]] = []
    dropped = 0
    for number, fields, values in parse_track_rows(data.decode("utf-8-sig"), path,
                                                   TRACK_COLUMNS):
        frame, track_id, x, y, z = values
        if math.isnan(x) or math.isnan(y) or math.isnan(z):
            dropped += 1
            continue
        for name, value, text_value in (("x", x, fields[2]), ("y", y, fields[3]),
                                        ("z", z, fields[4])):
            if math.isinf(value):
                raise DataFormatError("value is infinite", path=path, line=number, field=name,
                                      value=text_value, expected="a finite number or NaN")
        rows.append((int(frame), int(track_id), x, y, z))
    if dropped:
        logger.warning("%s: dropped %d rows whose position is NaN", path, dropped)
    return _tracks_frame(rows)


def _tracks_frame(rows: list[tuple[int, int, float, float, float]]) -> pl.DataFrame:
    schema = {"frame": pl.Int64, "id": pl.Int64, "x": pl.Float64, "y": pl.Float64,
              "z": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def write_tracks3d(path: Path, df: pl.DataFrame) -> None:
    """Write ``frame, id, x, y, z`` rows as a comma separated submission file without header.

    The file is written to a temporary name and renamed into place.

    Raises:
        KeyError: ``df`` lacks one of the columns frame, id, x, y, z.
    """
    missing = [name for name in TRACK_COLUMNS if name not in df.columns]
    if missing:
        raise KeyError(f"tracks table has no column {missing[0]!r}; "
                       f"expected columns: {', '.join(TRACK_COLUMNS)}")
    lines = [f"{int(frame)},{int(track_id)},{x!r},{y!r},{z!r}"
             for frame, track_id, x, y, z in df.select(TRACK_COLUMNS).iter_rows()]
    write_text(path, "".join(line + "\n" for line in lines))


def read_settings(path: Path) -> configparser.ConfigParser:
    """Read a sequence's ``settings.ini`` (keys are case-insensitive, inline ``#`` comments cut).

    The official files put comments after values (``n_fish = 2  # SET TO ...``), so ``#`` starts
    an inline comment here, as in the 3D-ZeF baseline's reader.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        harness.errors.DataFormatError: the file is not valid INI text.
    """
    path = Path(path)
    parser = configparser.ConfigParser(inline_comment_prefixes=("#", ";"))
    try:
        text = path.read_text(encoding="utf-8-sig")
        parser.read_string(text, source=str(path))
    except configparser.Error as error:
        line = getattr(error, "lineno", None)
        raise DataFormatError(f"invalid INI file: {error.message}", path=path, line=line,
                              expected="[Section] headers and key = value lines") from None
    return parser


def find_sequences(root: Path) -> dict[str, list[Path]]:
    """Find the ``ZebraFish-NN`` sequence folders under ``root``, by split.

    Folders are searched up to :data:`SEARCH_DEPTH` levels below ``root``. So ``root`` may be the
    archive's parent (``root/3DZeF20/train/ZebraFish-01``) or the ``3DZeF20`` folder. It may also
    be a split folder, any folder that directly contains ``ZebraFish-NN`` folders, a folder a
    few levels above these, or a sequence folder itself.

    The split of a sequence is the name of its parent folder when that is ``train`` or ``test``.
    Otherwise a sequence with ``gt/gt.txt`` counts as train and one without as test. When a
    sequence name is found twice, a copy in a ``train`` or ``test`` folder is used first, then
    the shallowest, and the others are logged.

    Returns:
        Split name -> sequence folders sorted by name; splits without a sequence are absent.
    """
    root = Path(root)
    candidates: list[Path] = []
    if SEQUENCE_PATTERN.match(root.name) and root.is_dir():
        candidates.append(root)
    else:
        candidates.extend(_sequence_folders(root))

    found: dict[str, list[Path]] = {}
    chosen: dict[str, Path] = {}
    for sequence in sorted(candidates, key=_copy_preference):
        if sequence.name in chosen:
            logger.warning("%s found twice: using %s, not %s", sequence.name,
                           chosen[sequence.name], sequence)
            continue
        chosen[sequence.name] = sequence
        split = sequence.parent.name
        if split not in ("train", "test"):
            split = "train" if (sequence / "gt" / "gt.txt").is_file() else "test"
        found.setdefault(split, []).append(sequence)
    return {split: sorted(paths, key=lambda p: p.name) for split, paths in sorted(found.items())}


def _copy_preference(sequence: Path) -> tuple[bool, int, str]:
    """Sort key of sequence copies: in a split folder first, then shallowest, then by path."""
    return sequence.parent.name not in ("train", "test"), len(sequence.parts), str(sequence)


def _sequence_folders(root: Path) -> list[Path]:
    """Return the ``ZebraFish-NN`` folders up to SEARCH_DEPTH levels below ``root``."""
    found: list[Path] = []
    level = [root] if root.is_dir() else []
    for _ in range(SEARCH_DEPTH):
        below: list[Path] = []
        for folder in level:
            try:
                children = [child for child in folder.iterdir()
                            if child.is_dir() and not child.name.startswith(".")]
            except PermissionError:
                logger.warning("cannot list %s; skipped", folder)
                continue
            for child in children:
                if SEQUENCE_PATTERN.match(child.name):
                    found.append(child)
                elif child.name not in _FRAME_FOLDER_NAMES:
                    below.append(child)
        level = below
    return found


def view_folder(seq_dir: Path, view: str) -> Path:
    """Return the frame folder of ``view`` (``"top"`` or ``"front"``) in a sequence folder.

    The archive's name (``imgT``, ``imgF``) is returned unless only the capitalised name that
    the 3D-ZeF baseline's README uses (``ImgT``, ``ImgF``) exists.
    """
    if view not in VIEW_FOLDERS:
        raise ValueError(f"unknown view {view!r}; valid values are: {', '.join(VIEWS)}")
    folder = Path(seq_dir) / VIEW_FOLDERS[view]
    capitalised = folder.with_name(folder.name.capitalize())
    if not folder.is_dir() and capitalised.is_dir():
        return capitalised
    return folder


def frame_paths(seq_dir: Path, view: str, *, seq_length: int | None = None) -> list[Path]:
    """List the frame images of one view in frame order (frame k at index k - 1).

    Frame files are named by their 1-based frame number (``000001.jpg``); other files in the
    folder are ignored.

    Args:
        seq_dir: The sequence folder.
        view: ``"top"`` (folder ``imgT``) or ``"front"`` (folder ``imgF``).
        seq_length: Number of frames the sequence must have; ``None`` takes the highest frame
            number found.

    Raises:
        FileNotFoundError: the view's folder does not exist or contains no frame image.
        harness.errors.DataFormatError: a frame between 1 and the last one is missing, or a frame
            number is present twice (e.g. as ``.jpg`` and ``.png``).
    """
    folder = view_folder(seq_dir, view)
    if not folder.is_dir():
        raise FileNotFoundError(f"frame folder of the {view} view not found: {folder}")
    frames: dict[int, Path] = {}
    for path in folder.iterdir():
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.stem.isdigit():
            continue
        frame = int(path.stem)
        if frame in frames:
            raise DataFormatError(f"frame {frame} is present twice", path=folder,
                                  value=f"{frames[frame].name}, {path.name}",
                                  expected="one image file per frame")
        frames[frame] = path
    if not frames:
        raise FileNotFoundError(f"no frame images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")

    last = seq_length if seq_length is not None else max(frames)
    for frame in range(1, last + 1):
        if frame not in frames:
            raise DataFormatError(
                f"frame {frame} of the {view} view is missing", path=folder,
                expected=f"an image per frame 1..{last}, named like 000001.jpg")
    extra = sorted(frame for frame in frames if frame > last or frame < 1)
    if extra:
        raise DataFormatError(
            f"frame {extra[0]} of the {view} view is outside the sequence", path=folder,
            value=frames[extra[0]].name, expected=f"frames 1..{last}")
    return [frames[frame] for frame in range(1, last + 1)]
