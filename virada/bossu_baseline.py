"""``python -m harness run virada bossu``: the Bossu et al. rain detector on a VIRADA split.

For every video of the split the detector (:mod:`virada.bossu`) writes the official
``<video file>_Results.csv`` and ``<video file>_Settings.txt`` (the C++ names them after the
video's file name, extension included, and ``evaluateBossu.py`` recovers the label key from that
name). The EM and Kalman detections are then scored per frame and per minute with
:mod:`virada.metrics` against the prepared labels, summing the counts over the videos as
``evaluateBossu.py`` does.

Metric names in the run record, for the Kalman output:

* ``minute_f1_rain``, ``minute_f1_norain``, ``minute_mcc``, ``minute_accuracy``: per minute at
  the 0.5 threshold.
* ``minute_auroc``, ``minute_aupr``: over the 101-threshold per-minute sweep.
* ``frame_f1_rain``, ``frame_f1_norain``, ``frame_mcc``, ``frame_accuracy``: the binary
  per-frame detections.

The raw EM output has the same names with the prefix ``em_``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness import atomic
from harness.config import load_preset_config, positive_int
from harness.errors import EvaluationError, FieldHarnessError
from harness.plugin import Baseline, EvalOutcome, RunContext
from virada.bossu import BossuDetector, BossuParameters, FrameResult
from virada.bossu_io import read_results_csv, read_settings, write_results_csv, write_settings
from virada.labels import VideoLabels, frame_labels, minute_of_frames
from virada.metrics import evaluate_detections, plot_curves

__all__ = [
    "PRESETS",
    "BossuBaseline",
    "VideoDetections",
    "detect_video",
    "score_results_csv",
    "score_videos",
]

logger = logging.getLogger(__name__)

PRESETS = {
    "paper": "bossu-default.toml",
    "bossu-default": "bossu-default.toml",
    "bossu-sweep": "bossu-sweep.toml",
}
"""Preset name -> file in ``virada/configs``; ``paper`` is the C++ default parameter set."""

HEADLINE_KEYS = ("f1_rain", "f1_norain", "mcc", "accuracy")
OUTPUTS = ("kalman", "em")


@dataclass
class VideoDetections:
    """The per-frame detections of one video and its label entry."""

    name: str
    """The video's file name, used as the per-video key of the run record."""
    frames: np.ndarray
    """0-based indices of the frames with output."""
    em_rain: np.ndarray
    kalman_rain: np.ndarray
    labels: VideoLabels
    extra: dict[str, float] = field(default_factory=dict)


def detect_video(
    video: str | PathLike[str],
    output_dir: str | PathLike[str],
    parameters: BossuParameters,
    *,
    progress: bool = True,
    frame_count: int | None = None,
) -> Path:
    """Run the detector on ``video`` and write its results and settings into ``output_dir``.

    Returns:
        The path of ``<video file name>_Results.csv``.

    Raises:
        DataFormatError: The video cannot be decoded.
    """
    from tqdm.auto import tqdm

    from virada.video import iter_frames

    video = Path(video)
    output_dir = Path(output_dir)
    settings_path = output_dir / f"{video.name}_Settings.txt"
    results_path = output_dir / f"{video.name}_Results.csv"

    detector = BossuDetector(parameters)
    rows: list[FrameResult] = []
    frames = tqdm(
        iter_frames(video),
        total=frame_count,
        desc=f"Bossu {video.name}",
        unit="frame",
        disable=not progress,
        leave=False,
    )
    for frame in frames:
        result = detector.process(frame)
        if result is not None:
            rows.append(result)
    if detector.frames_seen <= parameters.warm_up_frames:
        logger.warning(
            "%s has %d frames, no more than the %d warm-up frames, so the detector gives no "
            "output for it",
            video,
            detector.frames_seen,
            parameters.warm_up_frames,
        )

    write_settings(settings_path, parameters)
    write_results_csv(
        results_path,
        rows,
        settings_file=f"{output_dir.as_posix()}/{settings_path.name}",
        input_video=video.name,
        warm_up_frames=min(parameters.warm_up_frames, detector.frames_seen),
    )
    logger.info("wrote %s (%d rows)", results_path, len(rows))
    return results_path


def _detect_video_quietly(args: tuple[str, str, BossuParameters, int | None]) -> str:
    import cv2

    cv2.setNumThreads(1)
    video, output_dir, parameters, frame_count = args
    path = detect_video(video, output_dir, parameters, progress=False, frame_count=frame_count)
    return str(path)


def detections_from_results(
    results_csv: str | PathLike[str], parameters: BossuParameters | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the 0-based frame indices and the EM and Kalman detections of a results CSV.

    An older CSV without the two detection columns gets them from the C++ decision rule (GoF ≤
    ``max_gof_difference`` and the EM or Kalman mixture proportion ≥
    ``minimum_gaussian_surface``), with ``parameters``, else the ``_Settings.txt`` beside the
    CSV, else the C++ defaults.
    """
    results = read_results_csv(results_csv)
    table = results.table
    if results.has_detections:
        em_rain = table["em_rain"].to_numpy().astype(bool)
        kalman_rain = table["kalman_rain"].to_numpy().astype(bool)
        return results.frame_indices, em_rain, kalman_rain

    if parameters is None:
        path = Path(results_csv)
        sibling = path.with_name(path.name.removesuffix("_Results.csv") + "_Settings.txt")
        parameters = read_settings(sibling) if sibling.is_file() else BossuParameters()
        logger.info(
            "%s has no detection columns; deriving them with GoF <= %s and surface >= %s",
            path,
            parameters.max_gof_difference,
            parameters.minimum_gaussian_surface,
        )
    max_gof = float(np.float32(parameters.max_gof_difference))
    min_surface = float(np.float32(parameters.minimum_gaussian_surface))
    fits = table["goodness_of_fit"].to_numpy() <= max_gof
    em_rain = fits & (table["gauss_mix_prop"].to_numpy() >= min_surface)
    kalman_rain = fits & (table["kalman_mix_prop"].to_numpy() >= min_surface)
    return results.frame_indices, em_rain, kalman_rain


def _minutes_of(labels: VideoLabels, frames: np.ndarray) -> np.ndarray:
    if labels.per_file:
        return np.zeros(frames.shape, dtype=np.int64)
    return minute_of_frames(
        frames, frame_offset=labels.frame_offset, fpm=labels.fpm, num_labels=len(labels.labels)
    )


def score_videos(
    videos: Sequence[VideoDetections], *, decision_threshold: float = 0.5
) -> dict[str, dict[str, Any]]:
    """Score the EM and Kalman detections of several videos, per frame and per minute.

    Minutes are numbered per video, so a minute never mixes frames of two videos, and the counts
    of all videos are summed before the rates are computed (as ``evaluateBossu.py`` does).

    Returns:
        ``{"kalman": ..., "em": ...}``, each the output of
        :func:`virada.metrics.evaluate_detections`.

    Raises:
        EvaluationError: No video has any output frame.
    """
    usable = [video for video in videos if video.frames.size]
    if not usable:
        raise EvaluationError(
            "no frame to score: every video is shorter than the detector's warm-up"
        )

    minute_offset = 0
    frame_truth, minute_index, minute_truth = [], [], []
    for video in usable:
        minutes = _minutes_of(video.labels, video.frames)
        frame_truth.append(frame_labels(video.labels, video.frames) > 0)
        minute_index.append(minutes + minute_offset)
        minute_truth.append(np.asarray(video.labels.labels) > 0)
        minute_offset += len(video.labels.labels)

    truth = np.concatenate(frame_truth)
    index = np.concatenate(minute_index)
    truth_per_minute = np.concatenate(minute_truth)
    scored = {}
    for output in OUTPUTS:
        detections = np.concatenate([getattr(video, f"{output}_rain") for video in usable])
        scored[output] = evaluate_detections(
            detections.astype(np.float64),
            truth,
            index,
            truth_per_minute,
            decision_threshold=decision_threshold,
        )
    return scored


def headline_metrics(scored: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Flatten :func:`score_videos` output into the run record's metric names."""
    metrics: dict[str, float] = {}
    for output in OUTPUTS:
        prefix = "" if output == "kalman" else "em_"
        per_minute = scored[output]["per_minute"]
        per_frame = scored[output]["per_frame"]
        for key in HEADLINE_KEYS:
            metrics[f"{prefix}minute_{key}"] = float(per_minute[key])
        metrics[f"{prefix}minute_auroc"] = float(per_minute["AUROC"])
        metrics[f"{prefix}minute_aupr"] = float(per_minute["AUPR"])
        for key in HEADLINE_KEYS:
            metrics[f"{prefix}frame_{key}"] = float(per_frame[key])
    return metrics


def score_results_csv(
    csv_path: str | PathLike[str],
    labels: VideoLabels,
    *,
    parameters: BossuParameters | None = None,
    decision_threshold: float = 0.5,
) -> dict[str, dict[str, Any]]:
    """Score an existing official ``_Results.csv`` against one video's label entry.

    Frame indices are ``Frame# - 1``. Detections missing from an older CSV are derived as
    :func:`detections_from_results` describes.

    Returns:
        ``{"kalman": ..., "em": ...}`` as :func:`score_videos` returns it.
    """
    frames, em_rain, kalman_rain = detections_from_results(csv_path, parameters)
    video = VideoDetections(
        name=Path(csv_path).name,
        frames=frames,
        em_rain=em_rain,
        kalman_rain=kalman_rain,
        labels=labels,
    )
    return score_videos([video], decision_threshold=decision_threshold)


def _labels_of(row: Mapping[str, Any]) -> VideoLabels:
    return VideoLabels(
        labels=np.asarray(row["labels"], dtype=np.float64),
        per_file=bool(row["per_file"]),
        frame_offset=row["frame_offset"],
        timestamps=list(row["timestamps"] or []),
        frame_count=row["frame_count"],
        fpm=int(row["fpm"]),
    )


def _config_parameters(config: Mapping[str, Any]) -> BossuParameters:
    try:
        return BossuParameters.from_mapping(config)
    except TypeError as error:
        raise FieldHarnessError(f"invalid Bossu config: {error}") from error


def _write_sweeps(scored: Mapping[str, Mapping[str, Any]], output_dir: Path) -> list[Path]:
    files = []
    for output in OUTPUTS:
        sweep = scored[output]["per_minute_sweep"]
        csv_path = output_dir / f"bossu_{output}_per_minute_sweep.csv"
        with atomic.atomic_path(csv_path, suffix=".csv") as tmp:
            sweep.write_csv(tmp)
        files.append(csv_path)
        title = f"Bossu {output.upper() if output == 'em' else 'Kalman'} detections per minute"
        files.append(plot_curves(sweep, output_dir / f"bossu_{output}_per_minute.png", title=title))
    return files


class BossuBaseline(Baseline):
    """The Bossu et al. (IJCV 2011) rain-streak detector as re-implemented by the VIRADA
    authors: MOG2, HOS, EM, goodness of fit and a Kalman filter, per frame."""

    dataset: ClassVar[str] = "virada"
    name: ClassVar[str] = "bossu"
    description: ClassVar[str] = (
        "Bossu et al. rain detector (IJCV 2011), the VIRADA authors' C++ re-implemented with "
        "OpenCV MOG2: per-frame EM and Kalman rain detections, scored per frame and per minute"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add ``--config``, ``--set``, ``--split``, ``--workers`` and ``--version``."""
        presets = ", ".join(name for name in PRESETS if name != "paper")
        parser.add_argument(
            "--config",
            default=None,
            metavar="FILE_OR_PRESET",
            help=f"TOML file or preset ({presets}) whose values replace the C++ defaults "
            "(default: bossu-default)",
        )
        parser.add_argument(
            "--set",
            action="append",
            dest="overrides",
            default=[],
            metavar="KEY=VALUE",
            help="set one config value after --config, e.g. --set maximum_blob_size=200 "
            "(repeatable; an unknown key lists the valid ones)",
        )
        parser.add_argument(
            "--split",
            default="test",
            help="split to run on: train, val or test (default: test)",
        )
        parser.add_argument(
            "--workers",
            type=positive_int,
            default=None,
            metavar="N",
            help="videos processed in parallel, one process each (default: the config's "
            "workers, 1)",
        )
        parser.add_argument(
            "--version",
            default=None,
            dest="dataset_version",
            metavar="VERSION",
            help="prepared VIRADA version (default: the dataset's default)",
        )

    def run(self, args: argparse.Namespace, ctx: RunContext) -> EvalOutcome:
        """Detect rain in every video of the split, write the CSVs and score them.

        Raises:
            NotPreparedError: VIRADA is not prepared.
            FieldHarnessError: An invalid config value or option.
            DataFormatError: A video cannot be decoded.
        """
        from harness.loading import load_dataset
        from harness.storage import read_manifest

        manifest = read_manifest("virada", version=args.dataset_version, data_dir=ctx.data_dir)
        config = load_preset_config(
            "virada",
            PRESETS,
            args.config,
            args.overrides,
            data_kind=manifest.data_kind,
            run_name="VIRADA bossu",
        )
        if args.workers is not None:
            config["workers"] = args.workers
        workers = int(config["workers"])
        if workers < 1:
            raise FieldHarnessError(f"invalid workers {workers}; expected an integer >= 1")
        parameters = _config_parameters(config)

        table = load_dataset(
            "virada",
            split=args.split,
            config="videos",
            version=args.dataset_version,
            data_dir=ctx.data_dir,
            format="polars",
        )
        if table.height == 0:
            raise FieldHarnessError(f"the {args.split} split of VIRADA has no videos")
        rows = table.sort("file_name").to_dicts()

        results_dir = ctx.output_dir / "bossu_output"
        results_dir.mkdir(parents=True, exist_ok=True)
        csv_paths = self._detect_all(rows, results_dir, parameters, workers)

        videos = []
        for row, csv_path in zip(rows, csv_paths, strict=True):
            frames, em_rain, kalman_rain = detections_from_results(csv_path, parameters)
            videos.append(
                VideoDetections(
                    name=row["file_name"],
                    frames=frames,
                    em_rain=em_rain,
                    kalman_rain=kalman_rain,
                    labels=_labels_of(row),
                )
            )
        decision_threshold = float(config["decision_threshold"])
        scored = score_videos(videos, decision_threshold=decision_threshold)

        files = [*csv_paths]
        files += [
            path.with_name(path.name.replace("_Results.csv", "_Settings.txt")) for path in csv_paths
        ]
        files += _write_sweeps(scored, ctx.output_dir)
        per_item = {}
        for video in videos:
            if video.frames.size == 0:
                continue
            single = score_videos([video], decision_threshold=decision_threshold)
            per_item[video.name] = {
                "frames": float(video.frames.size),
                "em_rain_frames": float(video.em_rain.sum()),
                "kalman_rain_frames": float(video.kalman_rain.sum()),
                **headline_metrics(single),
            }

        # Worker processes do not change the result, so they do not make another configuration.
        recorded = {key: value for key, value in config.items() if key != "workers"}
        recorded["label_source"] = ",".join(sorted(set(table["label_source"].to_list())))
        return EvalOutcome(
            dataset="virada",
            method=self.name,
            metrics=headline_metrics(scored),
            version=manifest.version,
            split=args.split,
            per_item=per_item,
            data_kind=manifest.data_kind,
            files=files,
            config=recorded,
        )

    @staticmethod
    def _detect_all(
        rows: Sequence[Mapping[str, Any]],
        results_dir: Path,
        parameters: BossuParameters,
        workers: int,
    ) -> list[Path]:
        from tqdm.auto import tqdm

        if workers == 1 or len(rows) == 1:
            return [
                detect_video(row["video"], results_dir, parameters, frame_count=row["frame_count"])
                for row in rows
            ]
        jobs = [(row["video"], str(results_dir), parameters, row["frame_count"]) for row in rows]
        with ProcessPoolExecutor(max_workers=min(workers, len(rows))) as pool:
            done = tqdm(
                pool.map(_detect_video_quietly, jobs),
                total=len(jobs),
                desc="Bossu videos",
                unit="video",
            )
            return [Path(path) for path in done]
