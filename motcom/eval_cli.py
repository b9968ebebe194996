"""The ``eval`` commands of MOTChallenge data: score a tracker folder as TrackEval does.

* ``python -m harness eval mot17|mot20 --tracker-dir DIR`` scores against the prepared ground
  truth (the ``boxes`` and ``sequences`` tables) with the benchmark's preprocessing.
* ``python -m harness eval motchallenge --gt-dir DIR --tracker-dir DIR`` scores against
  unprepared folders in the MOTChallenge or TrackEval layout (custom data, MOT15, ...).

Both write TrackEval's ``pedestrian_summary.txt`` and ``pedestrian_detailed.csv`` into the run
folder.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from tqdm import tqdm

from harness.errors import EvaluationError
from harness.plugin import EvalOutcome, Evaluator, RunContext
from motcom.data import GroundTruth
from motcom.io import count_columns, ground_truth_from_bytes, read_tracks, seqinfo_from_bytes
from motcom.layout import DETECTORS, SequenceFolder, find_sequences, find_tracker_files
from motcom.prepare import is_sample
from motcom.spec import SEQUENCES_BY_BENCHMARK

if TYPE_CHECKING:  # pyarrow.compute is imported only by the prepared-data evaluators
    import pyarrow as pa

logger = logging.getLogger(__name__)

SUMMARY_FILE = "pedestrian_summary.txt"
DETAILED_FILE = "pedestrian_detailed.csv"
BENCHMARK_CHOICES = ("MOT15", "MOT16", "MOT17", "MOT20")


@dataclass(frozen=True)
class _Item:
    """One tracker file to score and the ground truth it is scored against."""

    name: str
    tracker_file: Path
    seq_length: int
    gt_key: str
    """Key of the ground truth: the base sequence for MOT17's detector copies."""


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracker-dir", type=Path, required=True, metavar="DIR",
                        help="tracker folder: one <sequence>.txt per sequence, directly or in "
                             "a data/ sub-folder")
    parser.add_argument("--sequences", nargs="+", default=None, metavar="SEQ",
                        help="evaluate exactly these sequences and ignore other tracker files "
                             "(default: every sequence of the ground truth)")
    parser.add_argument("--threshold", type=float, default=0.5, metavar="IOU",
                        help="IoU a CLEAR or Identity match needs (default: 0.5)")
    parser.add_argument("--method", default=None, metavar="NAME",
                        help="name of the tracker in the run record (default: the tracker "
                             "folder's name)")
    parser.add_argument("--motcom", action="store_true",
                        help="also plot each sequence's HOTA and MOTA against its complexity "
                             "(motcom_vs_scores.png; OCOM and MCOM from the ground truth, "
                             "without VCOM: 'run DATASET motcom' computes VCOM)")


def _with_motcom_plot(outcome: EvalOutcome, complexity: Mapping[str, Any],
                      output_dir: Path, title: str) -> EvalOutcome:
    """Add the plot of the outcome's per-sequence scores against sequence complexity."""
    from motcom.motcom_run import motcom_beside_scores

    path = motcom_beside_scores(outcome.per_item, complexity, output_dir / "motcom_vs_scores.png",
                                title=title)
    outcome.files.append(path)
    return outcome


def _method_name(args: argparse.Namespace) -> str:
    if args.method:
        return args.method
    folder = Path(args.tracker_dir).expanduser().resolve()
    return folder.parent.name if folder.name == "data" else folder.name


def _select(
    tracker_files: Mapping[str, Path],
    default: list[str],
    known: Iterable[str],
    requested: list[str] | None,
    tracker_dir: Path,
) -> list[str]:
    """Return the sequences to evaluate: ``requested``, else ``default``.

    Tracker files of other sequences are left out here, and :func:`_warn_ignored` lists them.

    Raises:
        EvaluationError: a requested sequence is unknown, or a sequence to evaluate has no
            tracker file.
    """
    known = sorted(set(known))
    if requested:
        unknown = [name for name in requested if name not in known]
        if unknown:
            raise EvaluationError(
                f"unknown sequence {unknown[0]!r} in --sequences; expected one of: "
                f"{', '.join(known)}"
            )
        selected = list(dict.fromkeys(requested))
    else:
        selected = list(default)

    folder = _tracker_folder(tracker_files, tracker_dir)
    for name in selected:
        if name not in tracker_files:
            raise EvaluationError(
                f"tracker file for sequence {name} not found: expected {folder / (name + '.txt')}"
            )
    return selected


def _reject_unknown_files(unknown: list[Path], expected: str, requested: bool) -> None:
    """Raise for tracker files that name no sequence, unless ``--sequences`` chose the files.

    Such a file is most often a misnamed result (``MOT17-2-SDP.txt``), which TrackEval would
    skip without a word. With ``--sequences`` the user named what to score, so the files are
    only listed in the warning.
    """
    if unknown and not requested:
        names = ", ".join(path.name for path in unknown)
        raise EvaluationError(
            f"tracker file(s) not named after a sequence: {names} in {unknown[0].parent}; "
            f"expected {expected}. Rename or remove them, or pass --sequences to score only "
            "the named sequences and ignore the other files"
        )


def _warn_ignored(folder: Path, groups: list[tuple[str, list[Path]]]) -> None:
    """Log one warning that lists the tracker files left out, grouped by the reason given."""
    parts = [f"{reason}: {', '.join(path.name for path in paths)}"
             for reason, paths in groups if paths]
    if not parts:
        return
    count = sum(len(paths) for _, paths in groups)
    logger.warning("ignoring %d tracker file(s) in %s, which are not evaluated. %s", count,
                   folder, ". ".join(parts))


def _tracker_folder(tracker_files: Mapping[str, Path], tracker_dir: Path) -> Path:
    return next(iter(tracker_files.values())).parent if tracker_files else tracker_dir


def _score(
    items: list[_Item],
    gt_for: Any,
    benchmark: str | None,
    threshold: float,
    output_dir: Path,
) -> tuple[dict[str, dict], dict, list[Path]]:
    """Evaluate every item, combine them and write TrackEval's two result files."""
    from motcom.evaluation import combine_sequences, evaluate_sequence
    from motcom.trackeval_output import write_detailed, write_summary

    results: dict[str, dict] = {}
    for item in tqdm(items, desc="evaluating", unit="sequence", disable=len(items) < 2):
        gt = gt_for(item)
        tracks = read_tracks(item.tracker_file, seq_length=item.seq_length)
        if len(tracks) == 0:
            # TrackEval 1.3.0 scores an empty file the same way: no tracker boxes.
            logger.warning("tracker file %s has no boxes: sequence %s is scored as if the "
                           "tracker found nothing", item.tracker_file, item.name)
        results[item.name] = evaluate_sequence(
            gt, tracks, item.seq_length, benchmark=benchmark, threshold=threshold, name=item.name
        )
    combined = combine_sequences(results)

    output_dir.mkdir(parents=True, exist_ok=True)
    rows = {**results, "COMBINED": combined}
    summary = output_dir / SUMMARY_FILE
    detailed = output_dir / DETAILED_FILE
    write_summary(rows, summary)
    write_detailed(rows, detailed)
    return results, combined, [summary, detailed]


def _outcome(
    dataset: str,
    method: str,
    results: dict[str, dict],
    combined: dict,
    files: list[Path],
    **fields: Any,
) -> EvalOutcome:
    from motcom.evaluation import headline

    return EvalOutcome(
        dataset=dataset,
        method=method,
        metrics=headline(combined),
        per_item={name: headline(res) for name, res in sorted(results.items())},
        files=files,
        **fields,
    )


# ---------------------------------------------------------------------------------------------
# Prepared MOT17 / MOT20


class PreparedMOTEvaluator(Evaluator):
    """``eval mot17`` / ``eval mot20``: a tracker folder against the prepared ground truth."""

    name: ClassVar[str] = "mot"
    description: ClassVar[str] = "score a tracker folder against prepared MOTChallenge data"

    def __init__(self, dataset: str, benchmark: str):
        self.dataset = dataset
        self.benchmark = benchmark
        self.name = dataset  # type: ignore[misc]
        self.description = (  # type: ignore[misc]
            f"score a tracker folder against the prepared {benchmark} ground truth with "
            "TrackEval's HOTA, CLEAR and Identity metrics"
        )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _add_common_arguments(parser)
        parser.add_argument("--split", default="train", choices=["train"],
                            help="split to evaluate (default: train; test has no public "
                                 "ground truth)")
        parser.add_argument("--version", default=None, dest="dataset_version",
                            metavar="VERSION", help="prepared dataset version (default: the "
                                                    "dataset's default version)")

    def evaluate(self, args: argparse.Namespace, ctx: RunContext) -> EvalOutcome:
        """Score ``args.tracker_dir`` and write the result files into ``ctx.output_dir``.

        Raises:
            harness.errors.NotPreparedError: the dataset is not prepared.
            harness.errors.EvaluationError: a tracker file is missing, or the tracker folder
                mixes detector copy names and base sequence names.
            harness.errors.DataFormatError: a tracker file breaks the format.
        """
        from harness.storage import read_manifest, read_prepared_table

        split = getattr(args, "split", "train")
        version = getattr(args, "dataset_version", None)
        manifest = read_manifest(self.dataset, version=version, data_dir=ctx.data_dir)
        sequences = read_prepared_table(self.dataset, "sequences", split,
                                        version=manifest.version, data_dir=ctx.data_dir)
        import pyarrow.compute as pc

        sequences = sequences.filter(pc.field("has_gt"))
        if sequences.num_rows == 0:
            raise EvaluationError(
                f"the prepared {self.dataset} {split} split has no ground truth; prepare a "
                "download that contains gt/gt.txt files"
            )
        boxes = read_prepared_table(self.dataset, "boxes", split, version=manifest.version,
                                    data_dir=ctx.data_dir)

        seq_length = dict(zip(sequences["sequence"].to_pylist(),
                              sequences["seq_length"].to_pylist(), strict=True))
        prepared_copies = dict(zip(sequences["sequence"].to_pylist(),
                                   sequences["copies"].to_pylist(), strict=True))
        base_of = {base: base for base in seq_length}
        if self.benchmark == "MOT17":
            for base in seq_length:
                base_of.update({f"{base}-{detector}": base for detector in DETECTORS})

        tracker_dir = Path(args.tracker_dir).expanduser()
        tracker_files = find_tracker_files(tracker_dir)
        folder = _tracker_folder(tracker_files, tracker_dir)
        prepared_files = [name for name in tracker_files if name in base_of]
        copy_files = [name for name in prepared_files if base_of[name] != name]
        base_files = [name for name in prepared_files if base_of[name] == name]
        if copy_files and base_files:
            raise EvaluationError(
                f"tracker folder {folder} mixes the two naming styles of {self.benchmark}: "
                f"detector copy names ({_examples(copy_files)}) and base sequence names "
                f"({_examples(base_files)}); name every file <sequence>-<detector>.txt to score "
                "each detector copy, or every file <sequence>.txt to score each sequence once"
            )
        if copy_files:
            # Every copy found by prepare, and any other detector copy the folder has.
            expected = sorted({copy for base in seq_length
                               for copy in prepared_copies[base] or [base]} | set(copy_files))
        else:
            expected = sorted(seq_length)
        selected = _select(tracker_files, expected, base_of, args.sequences, tracker_dir)
        self._warn_ignored(tracker_files, base_of, folder, split, bool(args.sequences))

        items = [
            _Item(name, tracker_files[name], seq_length[base_of[name]], base_of[name])
            for name in selected
        ]
        gt_tables = _split_by_sequence(boxes)
        cache: dict[str, GroundTruth] = {}

        def gt_for(item: _Item) -> GroundTruth:
            if item.gt_key not in cache:
                cache[item.gt_key] = _ground_truth_from_table(gt_tables.get(item.gt_key))
            return cache[item.gt_key]

        results, combined, files = _score(items, gt_for, self.benchmark, args.threshold,
                                          Path(ctx.output_dir))
        outcome = _outcome(
            self.dataset,
            _method_name(args),
            results,
            combined,
            files,
            version=manifest.version,
            split=split,
            data_kind=manifest.data_kind,
            config={
                "benchmark": self.benchmark,
                "threshold": args.threshold,
                "sequences": sorted(selected),
                "subset": manifest.subset,
            },
        )
        if getattr(args, "motcom", False):
            from motcom.motcom_run import complexity_of_prepared

            bases = sorted({item.gt_key for item in items})
            complexity = {c.sequence: c for c in complexity_of_prepared(
                self.dataset, sequences=bases, version=manifest.version, data_dir=ctx.data_dir)}
            outcome = _with_motcom_plot(outcome, complexity, Path(ctx.output_dir),
                                        f"{self.benchmark}: tracker scores against complexity")
        return outcome

    def method_name(self, args: argparse.Namespace) -> str:
        """Return ``--method``, else the tracker folder's name (see :func:`_method_name`)."""
        return _method_name(args)

    def _warn_ignored(
        self, tracker_files: Mapping[str, Path], known: Mapping[str, str], folder: Path,
        split: str, requested: bool,
    ) -> None:
        """Warn about tracker files that name no prepared sequence; they are not evaluated.

        Raises:
            EvaluationError: a file names no sequence of the benchmark at all, and
                ``--sequences`` was not given.
        """
        benchmark_names = set()
        for bases in SEQUENCES_BY_BENCHMARK[self.benchmark].values():
            benchmark_names.update(bases)
            if self.benchmark == "MOT17":
                benchmark_names.update(f"{base}-{detector}" for base in bases
                                       for detector in DETECTORS)
        others = [name for name in sorted(tracker_files) if name not in known]
        _reject_unknown_files(
            [tracker_files[name] for name in others if name not in benchmark_names],
            f"<sequence>.txt or <sequence>-<detector>.txt with a {self.benchmark} sequence",
            requested,
        )
        _warn_ignored(folder, [
            (f"Sequences of {self.benchmark} that are not in the prepared {split} split",
             [tracker_files[name] for name in others if name in benchmark_names]),
            (f"Not names of {self.benchmark} sequences",
             [tracker_files[name] for name in others if name not in benchmark_names]),
        ])


def _examples(names: list[str], limit: int = 3) -> str:
    """Return up to ``limit`` names as ``<name>.txt``, comma-separated, with "..." for more."""
    shown = [f"{name}.txt" for name in sorted(names)[:limit]]
    return ", ".join(shown) + (", ..." if len(names) > limit else "")


def _split_by_sequence(boxes: pa.Table) -> dict[str, pa.Table]:
    import pyarrow.compute as pc

    names = pc.unique(boxes["sequence"]).to_pylist()
    return {name: boxes.filter(pc.equal(boxes["sequence"], name)) for name in names}


def _ground_truth_from_table(table: pa.Table | None) -> GroundTruth:
    """Rebuild a sequence's :class:`GroundTruth` from its rows of the ``boxes`` table."""
    if table is None or table.num_rows == 0:
        return GroundTruth(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)),
                           np.zeros(0), np.zeros(0, np.int64), np.zeros(0))

    def column(name: str, dtype: type) -> np.ndarray:
        return table[name].to_numpy().astype(dtype)

    gt = GroundTruth(
        frame=column("frame", np.int64),
        id=column("id", np.int64),
        boxes=np.column_stack([column(name, np.float64)
                               for name in ("left", "top", "width", "height")]),
        flag=column("flag", np.float64),
        cls=column("class", np.int64),
        visibility=column("visibility", np.float64),
    )
    # Read-only, as motcom.io returns gt: the evaluation then prepares this gt once for all the
    # detector copies (DPM, FRCNN, SDP) scored against it.
    for array in (gt.frame, gt.id, gt.boxes, gt.flag, gt.cls, gt.visibility):
        array.setflags(write=False)
    return gt


# ---------------------------------------------------------------------------------------------
# Unprepared folders


class MOTChallengeEvaluator(Evaluator):
    """``eval motchallenge``: a tracker folder against an unprepared ground-truth folder."""

    name: ClassVar[str] = "motchallenge"
    description: ClassVar[str] = (
        "score a tracker folder against any MOTChallenge-format ground-truth folder (custom "
        "data, MOT15...) with TrackEval's HOTA, CLEAR and Identity metrics"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--gt-dir", type=Path, required=True, metavar="DIR",
                            help="ground-truth folder: one folder per sequence with gt/gt.txt "
                                 "and seqinfo.ini (TrackEval's layout is also accepted)")
        _add_common_arguments(parser)
        parser.add_argument("--benchmark", default=None, choices=BENCHMARK_CHOICES,
                            help="preprocessing of this benchmark: MOT16/MOT17/MOT20 remove "
                                 "tracker boxes on distractors and keep class-1 gt rows; MOT15 "
                                 "and the default (none) only drop gt rows with flag 0")
        parser.add_argument("--seq-length", type=int, default=None, metavar="N",
                            help="number of frames of sequences without seqinfo.ini (default: "
                                 "the largest frame number in the gt and tracker files)")

    def evaluate(self, args: argparse.Namespace, ctx: RunContext) -> EvalOutcome:
        """Score ``args.tracker_dir`` against ``args.gt_dir``.

        Raises:
            harness.errors.EvaluationError: no sequence with ground truth, a missing tracker
                file, an unknown sequence in ``--sequences``, or a sequence name found twice.
            harness.errors.DataFormatError: a file breaks the format.
        """
        gt_dir = Path(args.gt_dir).expanduser()
        if not gt_dir.is_dir():
            raise EvaluationError(f"ground-truth folder not found: {gt_dir}")
        if args.seq_length is not None and args.seq_length < 1:
            raise EvaluationError(f"--seq-length is {args.seq_length}; expected an integer >= 1")
        folders = {}
        without_gt = set()
        for sequence in find_sequences(gt_dir):
            if sequence.gt is None:
                without_gt.add(sequence.name)
                continue
            if sequence.name in folders:
                raise EvaluationError(
                    f"sequence {sequence.name} found twice under {gt_dir}: "
                    f"{folders[sequence.name].folder} and {sequence.folder}; pass --gt-dir the "
                    "folder of one split"
                )
            folders[sequence.name] = sequence
        if not folders:
            raise EvaluationError(
                f"no ground truth found under {gt_dir}: expected <sequence>/gt/gt.txt folders"
            )

        tracker_dir = Path(args.tracker_dir).expanduser()
        tracker_files = find_tracker_files(tracker_dir)
        selected = _select(tracker_files, sorted(folders), folders, args.sequences, tracker_dir)
        others = [name for name in sorted(tracker_files) if name not in folders]
        _reject_unknown_files(
            [tracker_files[name] for name in others if name not in without_gt],
            f"<sequence>.txt named after a sequence folder under {gt_dir}",
            bool(args.sequences),
        )
        _warn_ignored(_tracker_folder(tracker_files, tracker_dir), [
            (f"Sequences without gt/gt.txt under {gt_dir}",
             [tracker_files[name] for name in others if name in without_gt]),
            (f"Not names of sequence folders under {gt_dir}",
             [tracker_files[name] for name in others if name not in without_gt]),
        ])

        items = []
        for name in selected:
            length = self._seq_length(folders[name], tracker_files[name], args.seq_length)
            items.append(_Item(name, tracker_files[name], length, name))

        # MOT17's DPM, FRCNN and SDP folders hold byte-identical gt.txt files: parse each
        # distinct content once. The evaluation never modifies its input arrays.
        parsed: dict[tuple[bytes, int], tuple[GroundTruth, bool]] = {}
        with_distractors: list[str] = []

        def gt_for(item: _Item) -> GroundTruth:
            gt_file = folders[item.gt_key].gt
            data = gt_file.read_bytes()
            key = (hashlib.blake2b(data, digest_size=16).digest(), item.seq_length)
            if key not in parsed:
                gt = ground_truth_from_bytes(data, source=gt_file, seq_length=item.seq_length)
                parsed[key] = gt, _has_distractor_classes(data, gt)
            gt, distractors = parsed[key]
            if distractors:
                with_distractors.append(item.name)
            return gt

        results, combined, files = _score(items, gt_for, args.benchmark, args.threshold,
                                          Path(ctx.output_dir))
        if args.benchmark is None and with_distractors:
            logger.warning(
                "the ground truth of %s has 9 columns and class ids from 2 to 13, as MOT16, "
                "MOT17 and MOT20 files have, but without --benchmark no distractor preprocessing "
                "is applied, so tracker boxes on distractors count as false positives; pass "
                "--benchmark MOT17 (or MOT20) for the official numbers",
                ", ".join(sorted(with_distractors)),
            )
        outcome = _outcome(
            "motchallenge",
            _method_name(args),
            results,
            combined,
            files,
            data_kind="sample" if is_sample(gt_dir) else "real",
            config={
                "benchmark": args.benchmark,
                "threshold": args.threshold,
                "sequences": sorted(selected),
                "gt_dir": str(gt_dir.resolve()),
                "seq_length": args.seq_length,
            },
        )
        if getattr(args, "motcom", False):
            from motcom.motcom_run import complexity_of_folder

            # The reference scores only MOT17's SDP copy, so every detector copy of a sequence
            # is plotted against the complexity of that copy, under its base name.
            complexity = dict(complexity_of_folder(gt_dir))
            for name, value in list(complexity.items()):
                base, _, detector = name.rpartition("-")
                if detector in DETECTORS:
                    complexity.setdefault(base, value)
            outcome = _with_motcom_plot(outcome, complexity, Path(ctx.output_dir),
                                        "tracker scores against complexity")
        return outcome

    def method_name(self, args: argparse.Namespace) -> str:
        """Return ``--method``, else the tracker folder's name (see :func:`_method_name`)."""
        return _method_name(args)

    @staticmethod
    def _seq_length(sequence: SequenceFolder, tracker_file: Path, given: int | None) -> int:
        """Return seqLength from seqinfo.ini, else ``--seq-length``, else the largest frame."""
        if sequence.seqinfo is not None:
            data = sequence.seqinfo.read_bytes()
            return seqinfo_from_bytes(data, source=sequence.seqinfo,
                                      default_name=sequence.name).seq_length
        if given is not None:
            return given
        gt_frames = ground_truth_from_bytes(sequence.gt.read_bytes(), source=sequence.gt).frame
        tracker_frames = read_tracks(tracker_file).frame
        last = max(int(gt_frames.max(initial=0)), int(tracker_frames.max(initial=0)), 1)
        logger.warning(
            "%s has no seqinfo.ini and --seq-length is not set: using the largest frame number "
            "in its gt and tracker files, %d, as seqLength (it sets CLR_Frames and "
            "FP_per_frame); pass --seq-length to set it", sequence.name, last
        )
        return last


def _has_distractor_classes(data: bytes, gt: GroundTruth) -> bool:
    """Return whether a gt file has 9 columns and a class id from 2 to 13 (MOT16/17/20 style).

    Those ids are the non-pedestrian classes of MOT16/MOT17 (2 person on vehicle, 7 static
    person, 8 distractor, 12 reflection...) and MOT20 (13 crowd), used by their preprocessing.
    """
    if count_columns(data) != 9:
        return False
    return bool(np.any((gt.cls >= 2) & (gt.cls <= 13)))
