"""Read a VIRADA download (videos, label JSON, optionally rain-gauge files) into tables.

The reader finds the split folders ``train/``, ``val/`` and ``tst/`` at or one level below the
source, their ``.mkv`` and ``.mp4`` videos and the label JSON in ``labels/``. It probes every
video with PyAV and checks that its label entry covers it. With a gauge folder it makes the
labels from the gauge records instead (:mod:`virada.gauges`) and notes how they compare with the
shipped JSON.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from harness.errors import DataFormatError, FieldHarnessError
from harness.plugin import PreparedData
from virada.gauges import (
    DEFAULT_CLOCK_OFFSET_HOURS,
    DEFAULT_MAX_KM,
    DEFAULT_POSITION,
    labels_for_video,
    read_gauge_folder,
)
from virada.labels import VideoLabels, check_covers, minute_of_frames, read_label_json
from virada.names import VIDEO_EXTENSIONS, VideoName, parse_video_name
from virada.spec import MINUTES_SCHEMA, SPLIT_FOLDERS, VIDEOS_SCHEMA, VIRADA_SPEC
from virada.video import VideoInfo, probe

__all__ = ["PrepareSettings", "SIDES", "find_root", "read_virada_source"]

log = logging.getLogger(__name__)

SIDES = ("left", "right", "both")


@dataclass
class PrepareSettings:
    """Options of ``prepare virada``."""

    gauges: Path | None = None
    """Folder with a station list and gauge files; when set, labels come from the gauges."""
    label_file: str | None = None
    """Label JSON: a path, or a file name in ``labels/``; ``None`` takes the only one there."""
    side: str = "both"
    """Crossing 1 crops to keep: ``left``, ``right`` or ``both``."""
    position: tuple[float, float] = DEFAULT_POSITION
    clock_offset_hours: float = DEFAULT_CLOCK_OFFSET_HOURS
    max_distance_km: float = DEFAULT_MAX_KM
    label_kind: str = "binary"
    progress: bool = True
    notes: list[str] = field(default_factory=list)


@dataclass
class _Video:
    split: str
    path: Path
    name: VideoName
    info: VideoInfo | None = None
    labels: VideoLabels | None = None


def find_root(source: Path) -> Path:
    """Return the folder that contains the split folders: ``source`` or one of its sub-folders.

    Raises:
        FileNotFoundError: no split folder was found.
        FieldHarnessError: several sub-folders contain split folders.
    """
    folders = tuple(SPLIT_FOLDERS.values())
    if any((source / folder).is_dir() for folder in folders):
        return source
    found = sorted(child for child in source.iterdir() if child.is_dir()
                   and any((child / folder).is_dir() for folder in folders))
    if not found:
        raise FileNotFoundError(f"no split folder ({', '.join(folders)}) in {source} or its "
                                "sub-folders")
    if len(found) > 1:
        raise FieldHarnessError(f"several folders under {source} hold split folders: "
                                f"{', '.join(str(p) for p in found)}; pass --source one of them")
    return found[0]


def read_virada_source(source: Path, *, version: str | None = None,
                       settings: PrepareSettings | None = None) -> PreparedData:
    """Read the download under ``source`` into the ``videos`` and ``minutes`` tables.

    Raises:
        FileNotFoundError: no split folder or no video was found, or no label JSON and no
            gauge folder was given.
        DataFormatError: a video name follows neither scheme, a video is unreadable, a label
            JSON is malformed, lacks a video or does not cover one, or a gauge file is malformed.
    """
    settings = settings or PrepareSettings()
    notes = list(settings.notes)
    root = find_root(Path(source))
    videos = _find_videos(root, settings.side, notes)
    source_files = [v.path for v in videos]

    label_path = _find_label_file(root, settings.label_file, required=settings.gauges is None)
    shipped: dict[str, VideoLabels] = {}
    if label_path is not None:
        shipped = read_label_json(label_path)
        source_files.append(label_path)

    _probe_all(videos, settings.progress)

    if settings.gauges is not None:
        gauge_files = _label_from_gauges(videos, settings, notes)
        inside = [p for p in gauge_files if _is_under(p, root)]
        source_files.extend(inside)
        for path in gauge_files:
            if path not in inside:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                notes.append(f"gauge file {path} (outside the source) has SHA-256 {digest}")
        if label_path is not None:
            notes.append(_compare(videos, shipped, label_path))
        label_source = "gauges"
    else:
        assert label_path is not None
        for video in videos:
            entry = shipped.get(video.path.name)
            if entry is None:
                raise DataFormatError(f"no label entry for video {video.path.name!r}",
                                      path=label_path, field=video.path.name,
                                      expected="an entry for every video in the split folders")
            check_covers(entry, video.info.frame_count, label_path, video=video.path.name)
            if entry.fpm != round(video.info.fps * 60):
                notes.append(f"{video.path.name}: FPM {entry.fpm} of the label entry differs "
                             f"from 60 x the stream's {video.info.fps:g} fps")
            video.labels = entry
        label_source = "json"

    tables = _build_tables(videos, label_source)
    splits_found = sorted({v.split for v in videos})
    subset = len(splits_found) < len(SPLIT_FOLDERS)
    if subset:
        notes.append("splits found: " + ", ".join(splits_found))
    return PreparedData(
        version=VIRADA_SPEC.version(version).name,
        tables=tables,
        source_root=root,
        source_files=source_files,
        subset=subset,
        notes=notes,
    )


def _find_videos(root: Path, side: str, notes: list[str]) -> list[_Video]:
    videos: list[_Video] = []
    skipped = 0
    for split, folder in SPLIT_FOLDERS.items():
        directory = root / folder
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if not path.is_file() or not path.name.lower().endswith(VIDEO_EXTENSIONS):
                continue
            name = parse_video_name(path)
            if side != "both" and name.side is not None and name.side != side:
                skipped += 1
                continue
            videos.append(_Video(split, path, name))
    if not videos:
        raise FileNotFoundError(f"no {' or '.join(VIDEO_EXTENSIONS)} video in the split folders "
                                f"of {root}")
    if skipped:
        notes.append(f"side {side}: left out {skipped} Crossing 1 videos of the other side")
    return videos


def _find_label_file(root: Path, label_file: str | None, *, required: bool) -> Path | None:
    labels_dir = root / "labels"
    if label_file is not None:
        for candidate in (Path(label_file), root / label_file, labels_dir / label_file):
            if candidate.is_file():
                return candidate.resolve()
        raise FieldHarnessError(f"--label-file {label_file!r} not found as a path, under {root} "
                                f"or in {labels_dir}")
    found = sorted(labels_dir.glob("*.json")) if labels_dir.is_dir() else []
    if len(found) > 1:
        raise FieldHarnessError(
            f"{labels_dir} has several label files ({', '.join(p.name for p in found)}); "
            "choose one with --label-file NAME")
    if found:
        return found[0]
    if required:
        raise FileNotFoundError(f"no label JSON in {labels_dir}; pass --label-file PATH, or "
                                "--gauges DIR to make the labels from rain-gauge records")
    return None


def _probe_all(videos: list[_Video], progress: bool) -> None:
    from tqdm import tqdm

    for video in tqdm(videos, desc="probing VIRADA videos", unit="video", disable=not progress):
        video.info = probe(video.path)


def _label_from_gauges(videos: list[_Video], settings: PrepareSettings,
                       notes: list[str]) -> list[Path]:
    assert settings.gauges is not None
    stations, records = read_gauge_folder(settings.gauges)
    for video in videos:
        video.labels = labels_for_video(
            video.name, video.info.frame_count, video.info.fps, stations, records,
            position=settings.position, clock_offset_hours=settings.clock_offset_hours,
            kind=settings.label_kind, max_km=settings.max_distance_km)
    notes.append(
        f"labels made from the rain gauges in {settings.gauges} ({settings.label_kind}, camera "
        f"at {settings.position[0]:g},{settings.position[1]:g}, clock offset "
        f"{settings.clock_offset_hours:g} h, stations closer than "
        f"{settings.max_distance_km:g} km)")
    folder = Path(settings.gauges).resolve()
    return sorted(p for p in folder.glob("*.txt"))


def _compare(videos: list[_Video], shipped: dict[str, VideoLabels], label_path: Path) -> str:
    differ = []
    missing = []
    as_rain = False
    for video in videos:
        entry = shipped.get(video.path.name)
        if entry is None:
            missing.append(video.path.name)
            continue
        generated = video.labels
        shipped_values, generated_values = entry.labels, generated.labels
        if _is_binary(shipped_values) != _is_binary(generated_values):
            # Millimetres against binary labels: compare rain (> 0 mm) and no rain.
            as_rain = True
            shipped_values, generated_values = shipped_values > 0, generated_values > 0
        same = (not entry.per_file and len(entry.labels) == len(generated.labels)
                and np.array_equal(shipped_values, generated_values)
                and (entry.frame_offset or 0) == (generated.frame_offset or 0)
                and (not entry.timestamps or entry.timestamps == generated.timestamps))
        if not same:
            differ.append(video.path.name)
    text = (f"gauge labels equal those of {label_path.name} for "
            f"{len(videos) - len(differ) - len(missing)} of {len(videos)} videos")
    if as_rain:
        text += " (millimetres and binary labels compared as rain or no rain)"
    if differ:
        text += "; they differ for " + ", ".join(differ)
    if missing:
        text += f"; {label_path.name} has no entry for " + ", ".join(missing)
    return text


def _is_binary(labels: np.ndarray) -> bool:
    return bool(np.isin(labels, (0.0, 1.0)).all())


def _minute_rows(video: _Video) -> list[dict[str, object]]:
    entry, count = video.labels, video.info.frame_count
    common = {"split": video.split, "stem": video.name.stem, "file_name": video.path.name}
    if entry.per_file:
        stamp = entry.timestamps[0] if entry.timestamps else None
        return [{**common, "minute": 0, "label": float(entry.labels[0]), "timestamp": stamp,
                 "first_frame": 0, "stop_frame": count}]
    minutes = minute_of_frames(np.arange(count), frame_offset=entry.frame_offset,
                               fpm=entry.fpm, num_labels=len(entry.labels))
    rows = []
    # Only minutes that frames map to: the inclusive last gauge minute often has no frame.
    for minute in np.unique(minutes):
        frames = np.flatnonzero(minutes == minute)
        stamp = entry.timestamps[minute] if minute < len(entry.timestamps) else None
        rows.append({**common, "minute": int(minute), "label": float(entry.labels[minute]),
                     "timestamp": stamp, "first_frame": int(frames[0]),
                     "stop_frame": int(frames[-1]) + 1})
    return rows


def _build_tables(videos: list[_Video], label_source: str) -> dict[str, dict[str, pa.Table]]:
    video_rows: dict[str, list[dict[str, object]]] = {}
    minute_rows: dict[str, list[dict[str, object]]] = {}
    for video in videos:
        entry, info = video.labels, video.info
        video_rows.setdefault(video.split, []).append({
            "split": video.split,
            "video": str(video.path.resolve()),
            "file_name": video.path.name,
            "stem": video.name.stem,
            "crossing": video.name.crossing,
            "side": video.name.side,
            "start": video.name.start,
            "fps": info.fps,
            "frame_count": info.frame_count,
            "width": info.width,
            "height": info.height,
            "labels": [float(x) for x in entry.labels],
            "per_file": entry.per_file,
            "frame_offset": entry.frame_offset,
            "fpm": entry.fpm,
            "timestamps": list(entry.timestamps),
            "label_source": label_source,
        })
        minute_rows.setdefault(video.split, []).extend(_minute_rows(video))
    return {
        "videos": {split: pa.Table.from_pylist(rows, schema=VIDEOS_SCHEMA)
                   for split, rows in video_rows.items()},
        "minutes": {split: pa.Table.from_pylist(rows, schema=MINUTES_SCHEMA)
                    for split, rows in minute_rows.items()},
    }


def _is_under(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


