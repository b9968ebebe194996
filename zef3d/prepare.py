"""Turn a 3D-ZeF20 download into the prepared tables of the ``zef3d`` configs.

The source stays where the user has it, and the ``sequences`` table contains absolute paths of the
frame folders and calibration files. Nothing is written here, because the core writes the Parquet
files and the manifest.
"""

from __future__ import annotations

import configparser
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
from tqdm import tqdm

from harness.errors import DataFormatError
from harness.plugin import SAMPLE_MARKER, PreparedData
from harness.spec import DatasetSpec
from zef3d.camera import calibration_files, load_cameras
from zef3d.io import VIEWS, find_sequences, frame_paths, read_gt, read_settings, view_folder
from zef3d.spec import SEQUENCES

logger = logging.getLogger(__name__)

DEFAULT_FRAME_RATE = 60.0
"""Frame rate of the 3D-ZeF recordings (``fps = 60`` in the official ``settings.ini`` files),
used when a sequence has no ``settings.ini``."""


@dataclass
class _SplitTables:
    points: list[pl.DataFrame] = field(default_factory=list)
    top: list[pl.DataFrame] = field(default_factory=list)
    front: list[pl.DataFrame] = field(default_factory=list)
    sequences: list[dict] = field(default_factory=list)
    frames: list[pl.DataFrame] = field(default_factory=list)


def is_sample(source: Path) -> bool:
    """Return whether ``source`` or one of its parents contains the sample marker file."""
    folder = Path(source).expanduser().resolve()
    return any((parent / SAMPLE_MARKER).is_file() for parent in (folder, *folder.parents))


def read_source(spec: DatasetSpec, source: Path, version: str | None = None) -> PreparedData:
    """Read the 3D-ZeF20 sequences under ``source`` into the tables of every config.

    Args:
        spec: The dataset's spec (its default version).
        source: The archive's parent, the ``3DZeF20`` folder, a split folder or any folder that
            directly contains ``ZebraFish-NN`` folders.
        version: The version to prepare; the spec's default for ``None``.

    Raises:
        FileNotFoundError: no ``ZebraFish-NN`` folder was found, or a sequence lacks its
            calibration files.
        harness.errors.DataFormatError: a file does not follow the official format, or the two
            views have different numbers of frames.
    """
    version_name = spec.version(version).name
    root = Path(source).expanduser().resolve()
    found = find_sequences(root)
    if not found:
        raise FileNotFoundError(
            f"no 3D-ZeF sequence found under {root}; expected 3DZeF20/train/ZebraFish-01/ "
            "(gt/gt.txt, imgT/, imgF/, settings.ini, camT_*.json, camF_*.json) or a folder "
            "that directly contains ZebraFish-NN folders")

    notes: list[str] = []
    source_files: list[Path] = []
    tables: dict[str, _SplitTables] = {}
    pairs = [(split, seq_dir) for split, folders in found.items() for seq_dir in folders]
    for split, seq_dir in tqdm(pairs, desc="reading 3D-ZeF", unit="sequence",
                               disable=len(pairs) < 4):
        _read_sequence(seq_dir, tables.setdefault(split, _SplitTables()), source_files, notes)

    present = {seq_dir.name for _, seq_dir in pairs}
    missing = [name for names in SEQUENCES.values() for name in names if name not in present]
    if missing:
        notes.append(f"sequences not found: {', '.join(missing)}")
    missing_frames = [str(view_folder(seq_dir, view).relative_to(root)) for _, seq_dir in pairs
                      for view in VIEWS if not view_folder(seq_dir, view).is_dir()]
    if missing_frames:
        notes.append(f"frame folders not found: {', '.join(missing_frames)}")
    subset = bool(missing or missing_frames)

    return PreparedData(
        version=version_name,
        tables=_to_arrow(tables),
        source_root=root,
        source_files=sorted(set(source_files)),
        subset=subset,
        notes=notes,
        data_kind="sample" if is_sample(root) else "real",
    )


def _read_sequence(seq_dir: Path, tables: _SplitTables, source_files: list[Path],
                   notes: list[str]) -> None:
    name = seq_dir.name
    settings_path = seq_dir / "settings.ini"
    settings = None
    if settings_path.is_file():
        settings = read_settings(settings_path)
        source_files.append(settings_path)
    else:
        notes.append(f"{name}: no settings.ini; frame rate set to {DEFAULT_FRAME_RATE:g}")

    calibration = {view: calibration_files(seq_dir, view) for view in VIEWS}
    load_cameras(seq_dir)  # checks that the calibration files load and the poses solve
    for files in calibration.values():
        source_files.extend(files)

    gt_path = seq_dir / "gt" / "gt.txt"
    gt = None
    if gt_path.is_file():
        gt = read_gt(gt_path)
        source_files.append(gt_path)
        _check_unique(gt, gt_path)

    views = _read_views(seq_dir, source_files)
    for view, (paths, _) in views.items():
        tables.frames.append(pl.DataFrame({
            "sequence": [name] * len(paths), "view": [view] * len(paths),
            "frame": pl.Series(range(1, len(paths) + 1), dtype=pl.Int32),
            "image": [str(path) for path in paths]}))
    seq_length = _sequence_length(seq_dir, views, gt)
    if seq_length is None:
        notes.append(f"{name}: neither frames nor gt/gt.txt; sequence skipped")
        return
    if gt is not None and len(gt) and int(gt["frame"].max()) > seq_length:
        raise DataFormatError(
            f"ground truth has frame {int(gt['frame'].max())}, after the last frame "
            f"{seq_length} of the frame folders", path=gt_path,
            expected=f"frames 1..{seq_length}")

    if gt is not None:
        tables.points.append(_points_table(name, gt))
        tables.top.append(_boxes_table(name, gt, "top"))
        tables.front.append(_boxes_table(name, gt, "front"))

    row = {
        "sequence": name,
        "seq_length": seq_length,
        "frame_rate": _frame_rate(settings, settings_path),
        "has_gt": gt is not None,
        "settings": json.dumps(_settings_dict(settings), sort_keys=False),
    }
    for view in VIEWS:
        size = _image_size(views[view][0][0]) if view in views else (None, None)
        row[f"{view}_width"], row[f"{view}_height"] = size
        row[f"{view}_dir"] = str(view_folder(seq_dir, view)) if view in views else None
        row[f"{view}_intrinsic"] = str(calibration[view][0])
        row[f"{view}_references"] = str(calibration[view][1])
    tables.sequences.append(row)


def _read_views(seq_dir: Path, source_files: list[Path]) -> dict[str, tuple[list[Path], int]]:
    """Return the frame paths and their count per view that has a frame folder.

    Raises:
        harness.errors.DataFormatError: a frame is missing inside a view, or the two views
            have different numbers of frames.
    """
    views: dict[str, tuple[list[Path], int]] = {}
    for view in VIEWS:
        if not view_folder(seq_dir, view).is_dir():
            continue
        paths = frame_paths(seq_dir, view)
        views[view] = (paths, len(paths))
        source_files.append(paths[0])
    counts = {view: count for view, (_, count) in views.items()}
    if len(set(counts.values())) > 1:
        described = ", ".join(f"{view_folder(seq_dir, view).name} has {count}"
                              for view, count in counts.items())
        raise DataFormatError(f"the views have different numbers of frames: {described}",
                              path=seq_dir, expected="the same frame count in imgT and imgF")
    return views


def _image_size(path: Path) -> tuple[int, int]:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataFormatError("image cannot be decoded", path=path,
                              expected="a JPEG or PNG image")
    return int(image.shape[1]), int(image.shape[0])


def _sequence_length(seq_dir: Path, views: dict, gt: pl.DataFrame | None) -> int | None:
    if views:
        return next(iter(views.values()))[1]
    if gt is not None and len(gt):
        logger.warning("%s: no frame folders; the sequence length is the last gt frame",
                       seq_dir)
        return int(gt["frame"].max())
    return None


def _check_unique(gt: pl.DataFrame, path: Path) -> None:
    """Raise when an id appears twice in one frame."""
    duplicated = gt.select("frame", "id").filter(pl.struct("frame", "id").is_duplicated())
    if len(duplicated):
        first = duplicated.row(0, named=True)
        raise DataFormatError(
            f"id {first['id']} appears more than once in frame {first['frame']}", path=path,
            expected="one row per fish and frame")


def _frame_rate(settings: configparser.ConfigParser | None, path: Path) -> float:
    if settings is None:
        return DEFAULT_FRAME_RATE
    text = settings.defaults().get("fps")
    if text is None:
        return DEFAULT_FRAME_RATE
    try:
        return float(text)
    except ValueError:
        raise DataFormatError("fps is not a number", path=path, field="fps", value=text,
                              expected="frames per second, e.g. 60") from None


def _settings_dict(settings: configparser.ConfigParser | None) -> dict[str, dict[str, str]]:
    """Return the settings as section -> key -> text; DEFAULT keys appear only under DEFAULT."""
    if settings is None:
        return {}
    defaults = dict(settings.defaults())
    result = {"DEFAULT": defaults} if defaults else {}
    for section in settings.sections():
        own = {key: value for key, value in settings.items(section, raw=True)
               if key not in defaults or defaults[key] != value}
        result[section] = own
    return result


def _points_table(name: str, gt: pl.DataFrame) -> pl.DataFrame:
    return gt.select(
        pl.lit(name).alias("sequence"),
        "frame", "id", "x", "y", "z",
        "top_x", "top_y", "top_occlusion",
        "front_x", "front_y", "front_occlusion",
    )


def _boxes_table(name: str, gt: pl.DataFrame, view: str) -> pl.DataFrame:
    """Return a view's boxes as MOTChallenge gt rows; visibility 0.0 marks occluded fish."""
    return gt.select(
        pl.lit(name).alias("sequence"),
        "frame", "id",
        pl.col(f"{view}_left").alias("left"),
        pl.col(f"{view}_top").alias("top"),
        pl.col(f"{view}_width").alias("width"),
        pl.col(f"{view}_height").alias("height"),
        pl.lit(1.0).alias("flag"),
        pl.lit(1).alias("class"),
        (1.0 - pl.col(f"{view}_occlusion").cast(pl.Float64)).alias("visibility"),
    )


def _to_arrow(tables: dict[str, _SplitTables]) -> dict[str, dict[str, pa.Table]]:
    result: dict[str, dict[str, pa.Table]] = {}
    for split, split_tables in tables.items():
        for config in ("points", "top", "front", "frames"):
            frames = getattr(split_tables, config)
            if frames:
                result.setdefault(config, {})[split] = pl.concat(frames).to_arrow()
        if split_tables.sequences:
            result.setdefault("sequences", {})[split] = pa.Table.from_pylist(
                split_tables.sequences)
    return result

