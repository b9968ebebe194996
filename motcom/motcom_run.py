"""MOTCOM per sequence: ``python -m harness run mot17 motcom`` (and ``mot20``), any
MOTChallenge-format folder, and MOTCOM beside a tracker's scores.

The run reads the prepared ground truth and writes ``motcom.csv`` (columns ``sequence, ocom,
mcom, vcom, motcom``), a bar plot of the four values per sequence and a run record. OCOM and
MCOM come from :mod:`motcom.complexity`, VCOM from :mod:`motcom.vcom`. VCOM needs the frames
and ImageNet ResNet-18 weights. Without either, VCOM and MOTCOM are left empty and a warning
names what is missing.

MOT17 has three copies of each sequence that share one ground truth. The reference
implementation scores the SDP copies only, and ``prepare`` keeps the SDP copy's ground truth
whenever the copies differ, so each MOT17 sequence is scored once, under its base name
(``MOT17-02``).

This module imports neither torch nor matplotlib at import time, because the CLI builds its
parser from it.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness import atomic
from harness.config import parse_device, positive_int
from harness.errors import FieldHarnessError, NotPreparedError, UnknownNameError
from harness.plugin import Baseline, EvalOutcome, RunContext
from motcom.complexity import (
    MCOM_ORDERS,
    MotcomGroundTruth,
    SequenceComplexity,
    compute_complexity,
    motcom_ground_truth,
)
from motcom.data import GroundTruth, SequenceInfo

__all__ = [
    "CSV_COLUMNS",
    "MOT17MotcomBaseline",
    "MOT20MotcomBaseline",
    "VcomOptions",
    "VcomRunner",
    "complexity_of_folder",
    "complexity_of_prepared",
    "motcom_beside_scores",
    "plot_complexity",
    "write_complexity_csv",
]

logger = logging.getLogger(__name__)

CSV_FILE = "motcom.csv"
PLOT_FILE = "motcom.png"
CSV_COLUMNS = ("sequence", "ocom", "mcom", "vcom", "motcom")
_DETECTOR_SUFFIX = re.compile(r"-(DPM|FRCNN|SDP)$")


@dataclass(frozen=True)
class VcomOptions:
    """Settings of VCOM; see :func:`motcom.vcom.compute_vcom`."""

    enabled: bool = True
    weights: str | Path | None = None
    """A ResNet-18 weights file, ``random:SEED`` for a seeded random network, or None for
    torchvision's ImageNet file in torch's hub cache."""
    device: str = "auto"
    batch_size: int = 8
    cache_dir: Path | None = None
    progress: bool = True


class VcomRunner:
    """Computes VCOM sequence by sequence and stops trying once weights or torch are missing."""

    def __init__(self, options: VcomOptions):
        self.options = options
        self.disabled_reason: str | None = None if options.enabled else "disabled by --no-vcom"

    def __call__(self, gt: MotcomGroundTruth, frame_paths: Mapping[int, Path] | None
                 ) -> float | None:
        if self.disabled_reason is not None:
            return None
        if frame_paths is None:
            logger.warning("VCOM and MOTCOM of %s are left empty: no image folder (img1) was "
                           "found for it; VCOM needs the frames", gt.name)
            return None
        needed = np.unique(gt.frame)
        missing = [int(frame) for frame in needed if int(frame) not in frame_paths
                   or not Path(frame_paths[int(frame)]).is_file()]
        if missing:
            path = frame_paths.get(missing[0], f"frame {missing[0]}")
            logger.warning("VCOM and MOTCOM of %s are left empty: %d of its %d annotated frames "
                           "are missing, the first is %s", gt.name, len(missing), needed.size,
                           path)
            return None

        try:
            from motcom.vcom import VCOMUnavailable, compute_vcom
        except ImportError as error:
            self.disable(f"VCOM needs torch and torchvision, which cannot be imported "
                          f"({error}); install them, e.g. pip install 'fieldharness[train]'")
            return None
        options = self.options
        try:
            value = float(compute_vcom(
                gt, {int(frame): Path(frame_paths[int(frame)]) for frame in needed},
                weights=options.weights, device=options.device, cache_dir=options.cache_dir,
                batch_size=options.batch_size, progress=options.progress, name=gt.name))
        except VCOMUnavailable as error:
            self.disable(str(error))
            return None
        if math.isnan(value):
            logger.warning("VCOM and MOTCOM of %s are left empty: no object appears in two "
                           "consecutive annotated frames", gt.name)
            return None
        return value

    def disable(self, reason: str) -> None:
        self.disabled_reason = reason
        logger.warning("VCOM and MOTCOM are left empty: %s", reason)


# ---------------------------------------------------------------------------------------------
# Result files


def _cell(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else repr(float(value))


def write_complexity_csv(results: Sequence[SequenceComplexity], path: Path) -> Path:
    """Write one row per sequence (``sequence, ocom, mcom, vcom, motcom``) atomically.

    Values are written with full float precision; an empty cell means not computed.
    """
    with atomic.atomic_path(path, suffix=".csv") as tmp:
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for result in results:
                writer.writerow([result.sequence, _cell(result.ocom), _cell(result.mcom),
                                 _cell(result.vcom), _cell(result.motcom)])
    return path


def plot_complexity(results: Sequence[SequenceComplexity], path: Path, *, title: str) -> Path:
    """Draw OCOM, MCOM, VCOM and MOTCOM per sequence as grouped bars and save a PNG.

    Values that were not computed get no bar, and their legend entry is marked "(not computed)".
    """
    from harness.plotting import new_figure, save_png

    names = [result.sequence for result in results]
    series = {
        "OCOM": [result.ocom for result in results],
        "MCOM": [result.mcom for result in results],
        "VCOM": [result.vcom for result in results],
        "MOTCOM": [result.motcom for result in results],
    }
    figure = new_figure(max(5.0, 1.2 * len(names) + 2.0), 4.0)
    axes = figure.add_subplot()
    positions = np.arange(len(names))
    width = 0.2
    for index, (label, values) in enumerate(series.items()):
        present = [(p, v) for p, v in zip(positions, values, strict=True)
                   if v is not None and not math.isnan(v)]
        if not present:
            label += " (not computed)"
        xs = [p + (index - 1.5) * width for p, _ in present]
        axes.bar(xs, [v for _, v in present], width, label=label)
    axes.set_xticks(positions, names, rotation=30 if len(names) > 4 else 0, ha="right"
                    if len(names) > 4 else "center")
    axes.set_ylim(0.0, 1.0)
    axes.set_ylabel("complexity (0 = easy, 1 = hard)")
    axes.set_title(title)
    axes.legend(fontsize="small")
    return save_png(figure, path)


def motcom_beside_scores(
    per_sequence_scores: Mapping[str, Mapping[str, float]],
    complexity: Mapping[str, SequenceComplexity],
    path: str | os.PathLike[str],
    *,
    metrics: Sequence[str] = ("HOTA", "MOTA"),
    title: str | None = None,
) -> Path:
    """Plot a tracker's score per sequence against the sequence's complexity and save a PNG.

    One panel per metric. The x axis is MOTCOM when every plotted sequence has VCOM, else the
    mean of OCOM and MCOM for all of them (the axis label names which). A score sequence such as
    ``MOT17-02-SDP`` is matched to the complexity of ``MOT17-02`` when no complexity has its
    exact name, so MOT17 detector copies share their base sequence's complexity.

    Args:
        per_sequence_scores: Sequence name -> metric -> value, e.g. ``EvalOutcome.per_item``
            of ``python -m harness eval mot17``.
        complexity: Sequence name -> its complexity, e.g. from :func:`complexity_of_folder`.
        path: The PNG file to write.
        metrics: The metrics to plot, one panel each.
        title: Figure title.

    Returns:
        The path written.

    Raises:
        harness.errors.FieldHarnessError: no scored sequence has a complexity, or a metric is
            missing from every scored sequence.
    """
    from harness.plotting import new_figure, save_png

    pairs = []
    for name, scores in sorted(per_sequence_scores.items()):
        match = complexity.get(name) or complexity.get(_DETECTOR_SUFFIX.sub("", name))
        if match is not None:
            pairs.append((name, scores, match))
    if not pairs:
        raise FieldHarnessError(
            f"no scored sequence has a MOTCOM value: scores for "
            f"{', '.join(sorted(per_sequence_scores)) or 'none'}, complexity for "
            f"{', '.join(sorted(complexity)) or 'none'}; compute the complexity of the same "
            "sequences")
    for metric in metrics:
        if not any(metric in scores for _, scores, _ in pairs):
            raise FieldHarnessError(f"metric {metric!r} is missing from the scores of every "
                                    "sequence; expected one of "
                                    f"{', '.join(sorted(pairs[0][1]))}")

    use_motcom = all(match.motcom is not None for _, _, match in pairs)
    xs = [match.motcom if use_motcom else match.ocom_mcom_mean for _, _, match in pairs]
    label = "MOTCOM" if use_motcom else "mean of OCOM and MCOM (no VCOM)"

    figure = new_figure(4.2 * len(metrics), 3.8)
    for index, metric in enumerate(metrics):
        axes = figure.add_subplot(1, len(metrics), index + 1)
        points = [(x, scores[metric], name) for x, (name, scores, _) in zip(xs, pairs,
                                                                              strict=True)
                  if metric in scores and scores[metric] is not None]
        axes.scatter([p[0] for p in points], [p[1] for p in points])
        for x, y, name in points:
            axes.annotate(name, (x, y), textcoords="offset points", xytext=(3, 3),
                          fontsize="x-small")
        axes.set_xlabel(label)
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    return save_png(figure, path)


# ---------------------------------------------------------------------------------------------
# Any MOTChallenge-format folder


def complexity_of_folder(
    root: str | os.PathLike[str],
    *,
    sequences: Sequence[str] | None = None,
    occlusion: str = "visibility",
    y_rule: bool = True,
    mcom_order: str = "reference",
    vcom: VcomOptions | None = None,
) -> dict[str, SequenceComplexity]:
    """Compute MOTCOM of every sequence with ground truth under a MOTChallenge-format folder.

    Sequences are found as :func:`motcom.layout.find_sequences` finds them (the MOTChallenge
    and TrackEval layouts, at any depth). Each needs ``gt/gt.txt`` and a ``seqinfo.ini`` with
    ``seqLength``, ``imWidth`` and ``imHeight``. Of MOT17's detector copies only the SDP copy
    is scored, as in the reference (another copy where a sequence has no SDP copy). Results are
    keyed by folder name, e.g. ``MOT17-02-SDP``. VCOM reads the frames from each folder's
    image folder (``imDir``, ``<frame:06d><imExt>``).

    Args:
        root: The folder to search.
        sequences: Folder names to score; every sequence with ground truth when None.
        occlusion, y_rule, mcom_order: See :func:`motcom.complexity.compute_complexity`.
        vcom: VCOM options; None leaves VCOM out.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        harness.errors.FieldHarnessError: no sequence with ground truth was found.
        harness.errors.UnknownNameError: a name in ``sequences`` was not found.
        harness.errors.DataFormatError: a file breaks the MOTChallenge format.
    """
    from tqdm import tqdm

    from motcom.io import read_ground_truth, read_seqinfo
    from motcom.layout import find_sequences, group_copies

    found = [s for s in find_sequences(root) if s.gt is not None]
    chosen = [group.gt_source for group in group_copies(found) if group.gt_source is not None]
    if not chosen:
        raise FieldHarnessError(f"no sequence with gt/gt.txt found under {root}; expected "
                                "<sequence>/gt/gt.txt beside <sequence>/seqinfo.ini")
    by_name = {sequence.name: sequence for sequence in chosen}
    if sequences is not None:
        for name in sequences:
            if name not in by_name:
                raise UnknownNameError(f"sequence under {root}", name, by_name)
        chosen = [by_name[name] for name in sequences]

    runner = VcomRunner(vcom or VcomOptions(enabled=False))
    results = {}
    for sequence in tqdm(chosen, desc="MOTCOM", unit="sequence", disable=len(chosen) < 2):
        if sequence.seqinfo is None:
            raise FieldHarnessError(f"sequence folder {sequence.folder} has no seqinfo.ini, "
                                    "which MOTCOM needs for seqLength, imWidth and imHeight")
        info = read_seqinfo(sequence.seqinfo)
        info = SequenceInfo(sequence.name, info.seq_length, info.frame_rate, info.im_width,
                            info.im_height, info.im_dir, info.im_ext)
        gt = read_ground_truth(sequence.gt, seq_length=info.seq_length)
        prepared = motcom_ground_truth(gt, info, source=sequence.seqinfo)
        image_dir = Path(sequence.folder) / info.im_dir
        frame_paths = None
        if image_dir.is_dir():
            frame_paths = {int(frame): image_dir / f"{int(frame):06d}{info.im_ext}"
                           for frame in np.unique(prepared.frame)}
        value = runner(prepared, frame_paths) if vcom is not None and vcom.enabled else None
        results[sequence.name] = compute_complexity(
            prepared, occlusion=occlusion, y_rule=y_rule, mcom_order=mcom_order, vcom=value)
    return results


# ---------------------------------------------------------------------------------------------
# Prepared MOT17 / MOT20


def complexity_of_prepared(
    dataset: str,
    *,
    sequences: Sequence[str] | None = None,
    occlusion: str = "visibility",
    y_rule: bool = True,
    mcom_order: str = "reference",
    vcom: VcomOptions | None = None,
    version: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> list[SequenceComplexity]:
    """Compute MOTCOM of the prepared train sequences of ``mot17`` or ``mot20``.

    Results are in sequence-name order and named by base sequence (``MOT17-02``). VCOM reads
    the image paths of the ``frames`` table. Where VCOM cannot be computed, a warning names
    the reason and ``vcom`` is None.

    Args:
        dataset: ``"mot17"`` or ``"mot20"``.
        sequences: Sequences to score (``MOT17-02`` or a copy name such as ``MOT17-02-SDP``);
            every train sequence with ground truth when None.
        occlusion, y_rule, mcom_order: See :func:`motcom.complexity.compute_complexity`.
        vcom: VCOM options; None leaves VCOM out without a warning.
        version: Prepared version; the dataset's default when None.
        data_dir: Override of the data home.

    Raises:
        harness.errors.NotPreparedError: the dataset is not prepared.
        harness.errors.UnknownNameError: a name in ``sequences`` is not a prepared train
            sequence with ground truth.
        harness.errors.FieldHarnessError: no ground truth is prepared.
    """
    results, _ = _complexity_of_prepared(
        dataset, sequences=sequences, occlusion=occlusion, y_rule=y_rule,
        mcom_order=mcom_order, vcom=vcom or VcomOptions(enabled=False), version=version,
        data_dir=data_dir)
    return results


def _complexity_of_prepared(
    dataset: str, *, sequences: Sequence[str] | None, occlusion: str, y_rule: bool,
    mcom_order: str, vcom: VcomOptions, version: str | None,
    data_dir: str | os.PathLike[str] | None,
) -> tuple[list[SequenceComplexity], str | None]:
    """Return the results of :func:`complexity_of_prepared` and the reason VCOM is missing
    for every sequence (None when VCOM was computed or turned off)."""
    from harness.loading import load_dataset

    rows = load_dataset(dataset, split="train", config="sequences", format="polars",
                        version=version, data_dir=data_dir)
    rows = rows.filter(rows["has_gt"])
    if rows.height == 0:
        raise FieldHarnessError(f"the prepared {dataset} train split has no ground truth; "
                                "prepare a download that contains gt/gt.txt files")
    selected = _select_prepared(dataset, rows, sequences)
    boxes = load_dataset(dataset, split="train", config="boxes", format="polars",
                         version=version, data_dir=data_dir)

    runner = VcomRunner(vcom)
    frames = _prepared_frames(dataset, version, data_dir) if vcom.enabled else None
    if frames is None and vcom.enabled:
        runner.disable(f"the prepared {dataset} copy has no frames table, because the source "
                       "had no img1 image folders; prepare a download with images "
                       f"({dataset.upper()}.zip) to compute VCOM")

    results = []
    for row in selected:
        prepared = motcom_ground_truth(_ground_truth(boxes, row["sequence"]), _info(row),
                                       source=f"seqinfo.ini of {row['sequence']}")
        frame_paths = frames.get(row["sequence"]) if frames is not None else None
        value = runner(prepared, frame_paths)
        results.append(compute_complexity(prepared, occlusion=occlusion, y_rule=y_rule,
                                          mcom_order=mcom_order, vcom=value))
    return results, runner.disabled_reason if vcom.enabled else None


def _select_prepared(dataset: str, rows: Any, requested: Sequence[str] | None) -> list[dict]:
    """Return the ``sequences`` rows to score, in name order; warn about non-SDP MOT17 gt."""
    by_name = {row["sequence"]: row for row in rows.sort("sequence").iter_rows(named=True)}
    names = list(by_name)
    if requested is not None:
        names = []
        for name in requested:
            base = _DETECTOR_SUFFIX.sub("", name)
            if base not in by_name:
                raise UnknownNameError(f"{dataset} train sequence with ground truth", name,
                                       by_name)
            if base not in names:
                names.append(base)
    for name in names:
        copy = by_name[name]["gt_copy"]
        if dataset == "mot17" and copy and not copy.endswith("-SDP"):
            logger.warning("%s: the prepared ground truth comes from %s, not from the SDP copy "
                           "that the MOTCOM reference reads", name, copy)
    return [by_name[name] for name in names]


def _prepared_frames(dataset: str, version: str | None,
                     data_dir: str | os.PathLike[str] | None) -> dict[str, dict[int, Path]] | None:
    """Return the image path of every frame by sequence, or None without a frames table."""
    from harness.loading import load_dataset

    try:
        frames = load_dataset(dataset, split="train", config="frames", format="polars",
                              version=version, data_dir=data_dir,
                              columns=["sequence", "frame", "image"])
    except NotPreparedError:
        return None
    paths: dict[str, dict[int, Path]] = {}
    for sequence, frame, image in frames.iter_rows():
        if image is not None:
            paths.setdefault(sequence, {})[int(frame)] = Path(image)
    return paths


# ---------------------------------------------------------------------------------------------
# python -m harness run mot17|mot20 motcom


class _MotcomBaseline(Baseline):
    """MOTCOM (OCOM, MCOM, VCOM and their mean) of every prepared train sequence."""

    dataset: ClassVar[str]
    benchmark: ClassVar[str]
    name: ClassVar[str] = "motcom"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the sequence, OCOM, MCOM and VCOM options."""
        parser.add_argument("--sequences", nargs="+", default=None, metavar="SEQ",
                            help="sequences to score, e.g. MOT17-02 (default: every train "
                                 "sequence with ground truth)")
        parser.add_argument("--version", default=None, dest="dataset_version", metavar="VERSION",
                            help="prepared dataset version (default: the dataset's default)")

        occlusion = parser.add_argument_group("OCOM")
        occlusion.add_argument(
            "--bbox-occlusion", action="store_true",
            help="measure occlusion as the fraction of each box covered by other boxes, for "
                 "data without visibility (default: 1 - the visibility column)")
        occlusion.add_argument(
            "--no-y-rule", action="store_true",
            help="with --bbox-occlusion: let every overlapping box count as covering, not only "
                 "boxes whose bottom edge lies higher in the image")

        motion = parser.add_argument_group("MCOM")
        motion.add_argument(
            "--mcom-order", choices=MCOM_ORDERS, default="reference",
            help="reference: the reference code's box order, which skips each track's first "
                 "box and repeats its last; intended: every box in place (default: reference)")

        visual = parser.add_argument_group("VCOM")
        visual.add_argument(
            "--weights", default=None, metavar="PATH",
            help="ImageNet ResNet-18 weights file (torchvision's resnet18-f37072fd.pth), or "
                 "random:SEED for a seeded randomly initialised network (default: that file in "
                 "torch's hub cache)")
        visual.add_argument("--no-vcom", action="store_true",
                            help="compute OCOM and MCOM only; VCOM and MOTCOM stay empty")
        visual.add_argument("--device", type=parse_device, default="auto",
                            help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N "
                                 "(default: auto)")
        visual.add_argument("--batch-size", type=positive_int, default=8, metavar="N",
                            help="boxes per ResNet-18 forward pass (default: 8)")
        visual.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                            help="folder of the VCOM feature cache (default: "
                                 "DATA_HOME/cache/motcom-vcom)")

    def run(self, args: argparse.Namespace, ctx: RunContext) -> EvalOutcome:
        """Compute MOTCOM per sequence and write ``motcom.csv`` and ``motcom.png``.

        Raises:
            harness.errors.NotPreparedError: the dataset is not prepared.
            harness.errors.UnknownNameError: a ``--sequences`` name is not a prepared train
                sequence with ground truth.
            harness.errors.FieldHarnessError: invalid options, or no ground truth prepared.
            harness.errors.DataFormatError: a sequence's ``imWidth`` or ``imHeight`` is
                missing.
        """
        from harness.paths import data_home
        from harness.storage import read_manifest

        _check_options(args)
        manifest = read_manifest(self.dataset, version=args.dataset_version,
                                 data_dir=ctx.data_dir)
        cache_dir = args.cache_dir or data_home(ctx.data_dir) / "cache" / "motcom-vcom"
        vcom = VcomOptions(enabled=not args.no_vcom, weights=args.weights, device=args.device,
                           batch_size=args.batch_size, cache_dir=cache_dir)
        results, missing_reason = _complexity_of_prepared(
            self.dataset, sequences=args.sequences,
            occlusion="boxes" if args.bbox_occlusion else "visibility",
            y_rule=not args.no_y_rule, mcom_order=args.mcom_order, vcom=vcom,
            version=manifest.version, data_dir=ctx.data_dir)

        files = [write_complexity_csv(results, ctx.output_dir / CSV_FILE),
                 plot_complexity(results, ctx.output_dir / PLOT_FILE,
                                 title=f"MOTCOM of {self.benchmark} train sequences")]
        return EvalOutcome(
            dataset=self.dataset, method=self.name, metrics=_means(results),
            version=manifest.version, split="train",
            per_item={r.sequence: _item(r) for r in results},
            data_kind=manifest.data_kind, files=files,
            config=self._config(args, results, missing_reason))

    @staticmethod
    def _config(args: argparse.Namespace, results: list[SequenceComplexity],
                missing_reason: str | None) -> dict[str, Any]:
        weights = args.weights
        if weights is not None and Path(weights).exists():
            weights = str(Path(weights).resolve())
        return {
            "sequences": [r.sequence for r in results],
            "occlusion": "boxes" if args.bbox_occlusion else "visibility",
            "y_rule": (not args.no_y_rule) if args.bbox_occlusion else None,
            "mcom_order": args.mcom_order,
            "vcom": not args.no_vcom,
            "vcom_weights": weights,
            "vcom_missing_reason": missing_reason,
        }


class MOT17MotcomBaseline(_MotcomBaseline):
    """MOTCOM of the MOT17 train sequences (ground truth of the SDP copies)."""

    dataset: ClassVar[str] = "mot17"
    benchmark: ClassVar[str] = "MOT17"
    description: ClassVar[str] = (
        "MOTCOM dataset complexity per sequence (OCOM occlusion, MCOM motion, VCOM visual "
        "similarity and their mean), equal to the reference implementation")


class MOT20MotcomBaseline(_MotcomBaseline):
    """MOTCOM of the MOT20 train sequences."""

    dataset: ClassVar[str] = "mot20"
    benchmark: ClassVar[str] = "MOT20"
    description: ClassVar[str] = MOT17MotcomBaseline.description


def _check_options(args: argparse.Namespace) -> None:
    if args.no_y_rule and not args.bbox_occlusion:
        raise FieldHarnessError("--no-y-rule applies to --bbox-occlusion only; add "
                                "--bbox-occlusion or drop --no-y-rule")
    if args.no_vcom and args.weights is not None:
        raise FieldHarnessError("--weights is read by VCOM only, which --no-vcom turns off")
    weights = args.weights
    if weights is not None and not str(weights).startswith("random:") \
            and not Path(weights).expanduser().is_file():
        raise FieldHarnessError(f"weights file not found: {weights}; expected torchvision's "
                                "ImageNet ResNet-18 file (resnet18-f37072fd.pth)")


def _info(row: Mapping[str, Any]) -> SequenceInfo:
    return SequenceInfo(name=row["sequence"], seq_length=int(row["seq_length"]),
                        frame_rate=row["frame_rate"], im_width=row["im_width"],
                        im_height=row["im_height"], im_dir=row["im_dir"] or "img1",
                        im_ext=row["im_ext"] or ".jpg")


def _ground_truth(boxes: Any, sequence: str) -> GroundTruth:
    """Return one sequence's rows of the prepared ``boxes`` table, in ``gt.txt`` order."""
    rows = boxes.filter(boxes["sequence"] == sequence)

    def column(name: str, dtype: type) -> np.ndarray:
        return rows[name].to_numpy().astype(dtype)

    return GroundTruth(
        frame=column("frame", np.int64),
        id=column("id", np.int64),
        boxes=np.column_stack([column(name, np.float64)
                               for name in ("left", "top", "width", "height")]).reshape(-1, 4),
        flag=column("flag", np.float64),
        cls=column("class", np.int64),
        visibility=column("visibility", np.float64),
    )


def _item(result: SequenceComplexity) -> dict[str, float]:
    item = {"ocom": result.ocom, "mcom": result.mcom}
    if result.vcom is not None:
        item["vcom"] = result.vcom
        item["motcom"] = result.motcom
    item["boxes"] = result.boxes
    item["tracks"] = result.tracks
    return item


def _means(results: list[SequenceComplexity]) -> dict[str, float]:
    """Return the means over sequences; VCOM and MOTCOM only when every sequence has them."""
    metrics = {"ocom": float(np.mean([r.ocom for r in results])),
               "mcom": float(np.mean([r.mcom for r in results]))}
    if all(r.vcom is not None for r in results):
        metrics["vcom"] = float(np.mean([r.vcom for r in results]))
        metrics["motcom"] = float(np.mean([r.motcom for r in results]))
    return metrics
