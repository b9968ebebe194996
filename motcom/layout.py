"""Find MOTChallenge sequences and tracker files in the folder layouts users have.

Two layouts of ground truth are recognised, at any depth below the folder given (up to
:data:`MAX_DEPTH` levels):

* the MOTChallenge archive layout, ``MOT17/train/<seq>/{seqinfo.ini, gt/gt.txt, det/det.txt,
  img1/}`` (``test/`` without ``gt/``);
* TrackEval's layout, ``gt/mot_challenge/MOT17-train/<seq>/{seqinfo.ini, gt/gt.txt}`` with
  ``gt/mot_challenge/seqmaps/MOT17-train.txt``.

A sequence folder is any folder with a ``seqinfo.ini``, a ``gt/gt.txt`` or a ``det/det.txt``.
Zip archives found on the way (``MOT17.zip``, ``MOT17Labels.zip``...) are searched the same way
and read in place. A folder on disk is used before an archive member of the same name.
MOT17 has three copies of every sequence (``-DPM``, ``-FRCNN``, ``-SDP``, one per public
detector) that share one ground truth; :func:`group_copies` groups them by base sequence.

Tracker output is one ``<seq>.txt`` per sequence, either directly in the tracker folder or in
TrackEval's ``<tracker>/data/`` sub-folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.checksum import sha256_file
from harness.errors import EvaluationError

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

MAX_DEPTH = 6
"""How many folder levels below the given folder are searched for sequence folders."""

DETECTORS = ("DPM", "FRCNN", "SDP")
"""MOT17's public detectors, one copy of every sequence each."""

GT_PREFERENCE = ("SDP", "FRCNN", "DPM")
"""Order of preference among the copies' ground truth, used when the copies differ.

A public copy of MOT17-02-DPM, in a TrackEval data bundle on GitHub, has one track removed and
its rows reordered. Its SDP and FRCNN copies are the official file.
"""

_SPLIT_FOLDER = re.compile(r"^(?:(?P<benchmark>[A-Za-z0-9]+)-)?(?P<split>train|test|all)$")
_COPY_NAME = re.compile(r"^(?P<base>.+)-(?P<detector>DPM|FRCNN|SDP)$")
_BENCHMARK_NAME = re.compile(r"^(?P<benchmark>MOT\d\d)-")
_SKIPPED_FOLDERS = {"img1", "seqmaps", "trackers", "__MACOSX"}


@dataclass(frozen=True)
class ArchiveMember:
    """A file inside a zip archive, read in place.

    ``str()`` gives ``<archive>/<member>``, which error messages use as the file name.
    """

    archive: Path
    member: str
    zip_file: zipfile.ZipFile = field(compare=False, repr=False)

    def read_bytes(self) -> bytes:
        return self.zip_file.read(self.member)

    def __str__(self) -> str:
        return f"{self.archive}/{self.member}"

    def __fspath__(self) -> str:
        return str(self)


SourceFile = Path | ArchiveMember
"""A file of a sequence: on disk, or a member of a zip archive."""


@dataclass(frozen=True)
class SequenceFolder:
    """One sequence folder (for MOT17: one detector copy) and the files it holds."""

    name: str
    """Folder name, e.g. ``MOT17-02-SDP`` or ``MOT20-01``."""
    folder: Path
    """The folder; inside an archive, ``<archive>/<folder member>`` (not a real folder)."""
    split: str | None
    """``train``, ``test`` or ``None`` where the parent folder does not name it."""
    benchmark: str | None
    """``MOT17``, ``MOT20``... from the folder names, or ``None``."""
    seqinfo: SourceFile | None = None
    gt: SourceFile | None = None
    det: SourceFile | None = None
    images: SourceFile | None = None
    """The ``img1`` image folder, when present."""
    archive: Path | None = None
    """The zip archive the folder is in, or ``None`` for a folder on disk."""

    @property
    def base(self) -> str:
        """Sequence name without the detector suffix (``MOT17-02`` for ``MOT17-02-SDP``)."""
        match = _COPY_NAME.match(self.name)
        return match.group("base") if match else self.name

    @property
    def detector(self) -> str | None:
        """The public detector of a MOT17 copy (``SDP``), or ``None``."""
        match = _COPY_NAME.match(self.name)
        return match.group("detector") if match else None


@dataclass
class BaseSequence:
    """The copies of one base sequence, with the ground truth chosen for all of them."""

    name: str
    split: str | None
    copies: list[SequenceFolder]
    gt: SourceFile | None = None
    """The ``gt.txt`` used for every copy."""
    gt_source: SequenceFolder | None = None
    notes: list[str] = field(default_factory=list)
    """Remarks for the manifest, e.g. that the copies' ground truth differs."""

    @property
    def detectors(self) -> list[str]:
        return sorted(copy.detector for copy in self.copies if copy.detector)


def find_sequences(root: PathLike, *, max_depth: int = MAX_DEPTH) -> list[SequenceFolder]:
    """Return every sequence folder at or below ``root``, sorted by split and name.

    Image folders (``img1``), tracker folders and seqmaps are not searched.

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"source folder not found: {root}")

    found: list[SequenceFolder] = []
    start_depth = len(root.parts)
    # Symbolic links to folders are followed, since datasets are often linked into place; the
    # depth limit bounds any link cycle.
    for folder, subfolders, files in os.walk(root, followlinks=True):
        here = Path(folder)
        for name in sorted(files):
            if name.lower().endswith(".zip"):
                found.extend(_archive_sequences(here / name))
        sequence = _sequence_folder(here, set(files), set(subfolders))
        if sequence is not None:
            found.append(sequence)
            subfolders[:] = []
            continue
        if len(here.parts) - start_depth >= max_depth:
            subfolders[:] = []
            continue
        subfolders[:] = sorted(d for d in subfolders if d not in _SKIPPED_FOLDERS
                               and not d.startswith("."))
    # Folders on disk sort before archive members of the same name, so they are used first.
    return sorted(found, key=lambda s: (s.split or "", s.name, s.archive is not None,
                                        str(s.folder)))


def _archive_sequences(archive: Path) -> list[SequenceFolder]:
    """Return the sequence folders inside a zip archive, e.g. ``MOT17.zip``."""
    try:
        zip_file = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        logger.warning("skipping %s: not a readable zip archive (%s)", archive, exc)
        return []

    members = set(zip_file.namelist())
    folders: set[str] = set()
    for member in members:
        for suffix in ("/seqinfo.ini", "/gt/gt.txt", "/det/det.txt"):
            if member.endswith(suffix) and not member.startswith("__MACOSX/"):
                folders.add(member[: -len(suffix)])
    image_folders = {member.split("/img1/", 1)[0] for member in members if "/img1/" in member}

    def file(folder: str, relative: str) -> ArchiveMember | None:
        member = f"{folder}/{relative}"
        return ArchiveMember(archive, member, zip_file) if member in members else None

    sequences = []
    for folder in sorted(folders):
        path = archive / folder
        split, benchmark = _split_of(path)
        name_match = _BENCHMARK_NAME.match(path.name)
        if name_match:
            benchmark = name_match.group("benchmark")
        sequences.append(SequenceFolder(
            name=path.name,
            folder=path,
            split=split,
            benchmark=benchmark,
            seqinfo=file(folder, "seqinfo.ini"),
            gt=file(folder, "gt/gt.txt"),
            det=file(folder, "det/det.txt"),
            images=ArchiveMember(archive, f"{folder}/img1/", zip_file)
            if folder in image_folders else None,
            archive=archive,
        ))
    return sequences


def _sequence_folder(folder: Path, files: set[str], subfolders: set[str]) -> SequenceFolder | None:
    gt = folder / "gt" / "gt.txt"
    det = folder / "det" / "det.txt"
    has_gt = "gt" in subfolders and gt.is_file()
    has_det = "det" in subfolders and det.is_file()
    if "seqinfo.ini" not in files and not has_gt and not has_det:
        return None

    split, benchmark = _split_of(folder)
    name_match = _BENCHMARK_NAME.match(folder.name)
    if name_match:
        benchmark = name_match.group("benchmark")
    images = folder / "img1"
    return SequenceFolder(
        name=folder.name,
        folder=folder,
        split=split,
        benchmark=benchmark,
        seqinfo=folder / "seqinfo.ini" if "seqinfo.ini" in files else None,
        gt=gt if has_gt else None,
        det=det if has_det else None,
        images=images if "img1" in subfolders else None,
    )


def _split_of(folder: Path) -> tuple[str | None, str | None]:
    """Return (split, benchmark) from the parent folder: ``train`` below ``MOT17``, or
    ``MOT17-train``."""
    parent = folder.parent
    match = _SPLIT_FOLDER.match(parent.name)
    if not match:
        return None, None
    benchmark = match.group("benchmark")
    if benchmark is None and re.fullmatch(r"MOT\d\d", parent.parent.name):
        benchmark = parent.parent.name
    return match.group("split"), benchmark


def group_copies(sequences: Iterable[SequenceFolder]) -> list[BaseSequence]:
    """Group MOT17's detector copies by base sequence and choose one ground truth for each.

    Copies whose ``gt.txt`` files are byte-identical share it. When they differ, a warning is
    logged and the SDP copy's file is used, else FRCNN's, else DPM's (:data:`GT_PREFERENCE`).
    """
    groups: dict[tuple[str | None, str], list[SequenceFolder]] = {}
    for sequence in sequences:
        groups.setdefault((sequence.split, sequence.base), []).append(sequence)

    result = []
    for (split, base), copies in sorted(groups.items(), key=lambda item: (item[0][0] or "",
                                                                          item[0][1])):
        group = BaseSequence(name=base, split=split, copies=sorted(copies, key=lambda c: c.name))
        _choose_gt(group)
        result.append(group)
    return result


def _choose_gt(group: BaseSequence) -> None:
    with_gt = [copy for copy in group.copies if copy.gt is not None]
    if not with_gt:
        return
    rank = {detector: i for i, detector in enumerate(GT_PREFERENCE)}
    with_gt.sort(key=lambda c: (rank.get(c.detector or "", len(rank)), c.name))
    chosen = with_gt[0]
    group.gt, group.gt_source = chosen.gt, chosen
    if len(with_gt) == 1:
        return

    digests = {copy.name: file_sha256(copy.gt) for copy in with_gt}
    reference = digests[chosen.name]
    differing = sorted(name for name, digest in digests.items() if digest != reference)
    if differing:
        note = (f"{group.name}: the gt.txt of {', '.join(differing)} differs from "
                f"{chosen.name}'s; {chosen.name}'s is used for every copy")
        logger.warning(note)
        group.notes.append(note)


def file_sha256(path: SourceFile) -> str:
    """Return the SHA-256 hex digest of a file or archive member."""
    if isinstance(path, ArchiveMember):
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return sha256_file(path)


def read_seqmap(path: PathLike) -> list[str]:
    """Return the sequence names of a TrackEval seqmap file (a ``name`` header, one per line)."""
    names = []
    for line in Path(path).read_text(encoding="utf-8-sig").splitlines():
        name = line.strip().split(",")[0].strip()
        if name and name != "name":
            names.append(name)
    return names


def find_tracker_files(tracker_dir: PathLike) -> dict[str, Path]:
    """Return ``{sequence name: file}`` of a tracker folder.

    The folder contains one ``<seq>.txt`` per sequence, either directly or in TrackEval's
    ``data/`` sub-folder (used when it contains any ``.txt`` file).

    Raises:
        harness.errors.EvaluationError: the folder does not exist, is a file or has no ``.txt``
            file.
    """
    tracker_dir = Path(tracker_dir).expanduser()
    if tracker_dir.is_file():
        raise EvaluationError(
            f"tracker folder {tracker_dir} is a file, not a folder: pass the folder that "
            "contains the <sequence>.txt files"
        )
    if not tracker_dir.is_dir():
        raise EvaluationError(f"tracker folder not found: {tracker_dir}")
    data_dir = tracker_dir / "data"
    folder = data_dir if data_dir.is_dir() and any(data_dir.glob("*.txt")) else tracker_dir
    files = {path.stem: path for path in sorted(folder.glob("*.txt")) if path.is_file()}
    if not files:
        raise EvaluationError(
            f"no tracker files in {tracker_dir}: expected one <sequence>.txt per sequence there "
            f"or in {data_dir}"
        )
    return files
