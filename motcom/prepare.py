"""Turn a MOT17 or MOT20 download, in any layout :mod:`motcom.layout` finds, into prepared tables.

The source stays where the user has it, and the ``frames`` table contains absolute image paths
into it. Nothing is written here, because the core writes the Parquet files and the manifest.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from harness.errors import DataFormatError
from harness.plugin import SAMPLE_MARKER, PreparedData
from harness.spec import DatasetSpec
from motcom.data import GroundTruth, SequenceInfo
from motcom.io import detections_from_bytes, ground_truth_from_bytes, seqinfo_from_bytes
from motcom.layout import (
    DETECTORS,
    ArchiveMember,
    BaseSequence,
    SequenceFolder,
    SourceFile,
    find_sequences,
    group_copies,
)
from motcom.spec import (
    BOXES_SCHEMA,
    DETECTIONS_SCHEMA,
    FRAMES_SCHEMA,
    SEQUENCES_BY_BENCHMARK,
    SEQUENCES_SCHEMA,
)

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


@dataclass
class _SplitTables:
    """Tables of one split while they are being built."""

    boxes: list[pa.Table] = field(default_factory=list)
    frames: list[pa.Table] = field(default_factory=list)
    detections: list[pa.Table] = field(default_factory=list)
    sequences: list[dict] = field(default_factory=list)


def is_sample(source: PathLike) -> bool:
    """Return whether ``source`` or one of its parents contains the sample marker file."""
    folder = Path(source).expanduser().resolve()
    return any((parent / SAMPLE_MARKER).is_file() for parent in (folder, *folder.parents))


def read_mot_source(
    spec: DatasetSpec, benchmark: str, source: PathLike, version: str | None = None
) -> PreparedData:
    """Read the MOT17 or MOT20 sequences under ``source`` into prepared tables.

    Args:
        spec: the dataset's spec (its splits and version).
        benchmark: ``"MOT17"`` or ``"MOT20"``; sequences of other benchmarks are skipped.
        source: a folder at or above the split folders.
        version: the version to prepare; the spec's default for ``None``.

    Raises:
        FileNotFoundError: no sequence of the benchmark was found under ``source``.
        harness.errors.DataFormatError: a file does not follow the official format, or a
            sequence has no ``seqinfo.ini``.
    """
    version_name = spec.version(version).name
    root = Path(source).expanduser().resolve()
    known = SEQUENCES_BY_BENCHMARK[benchmark]
    found = _select(find_sequences(root), benchmark, known)
    if not found:
        raise FileNotFoundError(
            f"no {benchmark} sequence found under {root}; expected the archive layout "
            f"{benchmark}/train/<sequence>/(seqinfo.ini, gt/gt.txt) or TrackEval's layout "
            f"gt/mot_challenge/{benchmark}-train/<sequence>/(seqinfo.ini, gt/gt.txt)"
        )

    groups = group_copies(found)
    notes: list[str] = []
    source_files: list[Path] = []
    tables: dict[str, _SplitTables] = {}
    progress = tqdm(groups, desc=f"reading {benchmark}", unit="sequence", disable=len(groups) < 4)
    for group in progress:
        split = group.split or "train"
        _read_group(group, split, tables.setdefault(split, _SplitTables()), source_files)
        notes.extend(group.notes)

    subset, missing_notes = _missing_parts(groups, known, benchmark)
    notes.extend(missing_notes)
    archived = sorted({str(copy.archive) for group in groups for copy in group.copies
                       if isinstance(copy.images, ArchiveMember)})
    if archived:
        # NOTE: the core opens image paths on disk only, so images left in an archive are not
        # listed in the frames table.
        notes.append(f"images inside {', '.join(archived)} are not listed in the frames table; "
                     "extract the archive and prepare the extracted folder to get it")
    return PreparedData(
        version=version_name,
        tables=_concat(tables),
        source_root=root,
        source_files=sorted(set(source_files)),
        subset=subset,
        notes=notes,
        data_kind="sample" if is_sample(root) else "real",
    )


def _select(
    sequences: list[SequenceFolder], benchmark: str, known: dict[str, tuple[str, ...]]
) -> list[SequenceFolder]:
    """Keep the benchmark's sequences, with the split taken from the official lists when the
    folders do not name it, and the first folder of each copy name."""
    split_of = {name: split for split, names in known.items() for name in names}
    kept: dict[str, SequenceFolder] = {}
    for sequence in sequences:
        if sequence.base not in split_of:
            logger.debug("skipping %s: not a %s sequence", sequence.folder, benchmark)
            continue
        if sequence.benchmark not in (None, benchmark):
            continue
        if sequence.split not in ("train", "test"):
            sequence = dataclasses.replace(sequence, split=split_of[sequence.base])
        if sequence.name in kept:
            logger.warning("%s found twice: using %s, not %s", sequence.name,
                           kept[sequence.name].folder, sequence.folder)
            continue
        kept[sequence.name] = sequence
    return list(kept.values())


def _read_group(
    group: BaseSequence, split: str, tables: _SplitTables, source_files: list[Path]
) -> None:
    info = _sequence_info(group, source_files)
    name = group.name
    copies = group.copies

    gt = None
    if group.gt is not None:
        gt = ground_truth_from_bytes(group.gt.read_bytes(), source=group.gt,
                                     seq_length=info.seq_length)
        source_files.extend(_on_disk(copy.gt) for copy in copies if copy.gt is not None)
        tables.boxes.append(_boxes_table(name, gt))

    for copy in copies:
        if copy.det is None:
            continue
        detections = detections_from_bytes(copy.det.read_bytes(), source=copy.det)
        source_files.append(_on_disk(copy.det))
        tables.detections.append(_detections_table(name, copy.detector, detections))

    image_copy = next((c for c in [group.gt_source, *copies] if c is not None and
                       (c.folder / info.im_dir).is_dir()), None)
    if image_copy is not None:
        tables.frames.append(_frames_table(name, info, image_copy.folder / info.im_dir, gt))

    tables.sequences.append({
        "sequence": name,
        "seq_length": info.seq_length,
        "frame_rate": info.frame_rate,
        "im_width": info.im_width,
        "im_height": info.im_height,
        "im_dir": info.im_dir,
        "im_ext": info.im_ext,
        "detectors": group.detectors,
        "copies": [copy.name for copy in copies],
        "has_gt": gt is not None,
        "gt_copy": group.gt_source.name if group.gt_source is not None else None,
    })


def _on_disk(file: SourceFile) -> Path:
    """Return the file on disk that was read: the archive for an archive member."""
    return file.archive if isinstance(file, ArchiveMember) else file


def _sequence_info(group: BaseSequence, source_files: list[Path]) -> SequenceInfo:
    """Read the seqinfo.ini of every copy and check that they agree on seqLength."""
    infos = []
    for copy in group.copies:
        if copy.seqinfo is not None:
            info = seqinfo_from_bytes(copy.seqinfo.read_bytes(), source=copy.seqinfo,
                                      default_name=copy.name)
            infos.append((copy, info))
            source_files.append(_on_disk(copy.seqinfo))
    if not infos:
        folder = group.copies[0].folder
        raise DataFormatError(
            f"sequence {group.name} has no seqinfo.ini",
            path=folder,
            expected="a seqinfo.ini with seqLength in every sequence folder",
        )
    first_copy, first = infos[0]
    for copy, info in infos[1:]:
        if info.seq_length != first.seq_length:
            raise DataFormatError(
                f"seqLength differs between the copies of {group.name} "
                f"({first_copy.name}: {first.seq_length})",
                path=copy.seqinfo,
                field="seqLength",
                value=info.seq_length,
                expected=f"the same seqLength in every copy ({first.seq_length})",
            )
    return first


def _boxes_table(name: str, gt: GroundTruth) -> pa.Table:
    n = len(gt)
    return pa.table({
        "sequence": pa.array([name] * n, pa.string()) if n else pa.array([], pa.string()),
        "frame": gt.frame.astype(np.int32),
        "id": gt.id,
        "left": gt.boxes[:, 0],
        "top": gt.boxes[:, 1],
        "width": gt.boxes[:, 2],
        "height": gt.boxes[:, 3],
        "flag": gt.flag,
        "class": gt.cls.astype(np.int32),
        "visibility": gt.visibility,
    }, schema=BOXES_SCHEMA)


def _detections_table(name: str, detector: str | None, detections) -> pa.Table:
    n = len(detections)
    return pa.table({
        "sequence": pa.array([name] * n, pa.string()),
        "detector": pa.array([detector] * n, pa.string()),
        "frame": detections.frame.astype(np.int32),
        "left": detections.boxes[:, 0],
        "top": detections.boxes[:, 1],
        "width": detections.boxes[:, 2],
        "height": detections.boxes[:, 3],
        "score": detections.conf,
    }, schema=DETECTIONS_SCHEMA)


def _frames_table(
    name: str, info: SequenceInfo, image_dir: Path, gt: GroundTruth | None
) -> pa.Table:
    """Build one row per frame with that frame's boxes as list columns, without a Python loop
    over boxes."""
    frames = np.arange(1, info.seq_length + 1)
    images = [str(image_dir / f"{frame:06d}{info.im_ext}") for frame in frames]
    if gt is None:
        gt = GroundTruth(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)),
                         np.zeros(0), np.zeros(0, np.int64), np.zeros(0))

    order = np.argsort(gt.frame, kind="stable")
    counts = np.bincount(gt.frame, minlength=info.seq_length + 1)[1:]
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))

    def listed(values: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
        return pa.ListArray.from_arrays(offsets, pa.array(values[order], arrow_type))

    box_lists = pa.ListArray.from_arrays(
        pa.array(np.arange(0, 4 * len(order) + 1, 4, dtype=np.int32)),
        pa.array(gt.boxes[order].reshape(-1), pa.float64()),
    )
    return pa.table({
        "sequence": pa.array([name] * len(frames), pa.string()),
        "frame": frames.astype(np.int32),
        "image": pa.array(images, pa.string()),
        "width": pa.array([info.im_width] * len(frames), pa.int32()),
        "height": pa.array([info.im_height] * len(frames), pa.int32()),
        "ids": listed(gt.id, pa.int64()),
        "boxes": pa.ListArray.from_arrays(offsets, box_lists),
        "classes": listed(gt.cls.astype(np.int32), pa.int32()),
        "flags": listed(gt.flag, pa.float64()),
        "visibility": listed(gt.visibility, pa.float64()),
    }, schema=FRAMES_SCHEMA)


def _concat(tables: dict[str, _SplitTables]) -> dict[str, dict[str, pa.Table]]:
    result: dict[str, dict[str, pa.Table]] = {}
    for split, parts in sorted(tables.items()):
        if parts.boxes:
            result.setdefault("boxes", {})[split] = pa.concat_tables(parts.boxes)
        if parts.frames:
            result.setdefault("frames", {})[split] = pa.concat_tables(parts.frames)
        if parts.detections:
            result.setdefault("detections", {})[split] = pa.concat_tables(parts.detections)
        result.setdefault("sequences", {})[split] = pa.Table.from_pylist(
            parts.sequences, schema=SEQUENCES_SCHEMA
        )
    return result


def _missing_parts(
    groups: list[BaseSequence], known: dict[str, tuple[str, ...]], benchmark: str
) -> tuple[bool, list[str]]:
    """Return whether the source is a subset of the release, and one note per missing part."""
    notes = []
    present = {(group.split, group.name): group for group in groups}
    for split, names in known.items():
        missing = [name for name in names if (split, name) not in present]
        if missing:
            notes.append(f"{split}: {len(missing)} of {len(names)} sequences missing "
                         f"({', '.join(missing)})")

    no_det = [group.name for group in groups if not any(c.det for c in group.copies)]
    no_images = [group.name for group in groups if not any(c.images for c in group.copies)]
    no_gt = [group.name for group in groups if group.split == "train" and group.gt is None]
    for group in groups:
        absent = sorted(set(DETECTORS) - set(group.detectors)) if benchmark == "MOT17" else []
        if absent:
            notes.append(f"{group.name}: detector copies missing ({', '.join(absent)})")
    parts = (("gt/gt.txt", no_gt), ("det/det.txt", no_det), ("images (img1)", no_images))
    for what, names in parts:
        if names:
            notes.append(f"{what} missing in {len(names)} of {len(groups)} sequences "
                         f"({', '.join(names)})")
    return bool(notes), notes
