"""The 3D-ZeF modular baseline: ``python -m harness run zef3d naive`` and ``... frcnn``.

Both run the pipeline of :mod:`zef3d.pipeline` on every prepared sequence of a split (median
background, a detector per view, 2D tracklets, cross-view matching, linking) with the
parameters of the sequence's ``settings.ini``. They write one submission file per sequence
(``tracks/ZebraFish-NN.txt``, ``frame, id, x, y, z``) and a plot of the 3D trajectories. On the
train split they score the tracks against the prepared ground truth with the 3D-ZeF evaluation
(3D head positions, 0.5 cm threshold, py-motmetrics semantics). The test split's ground truth is
withheld, so its tracks are only written.

``naive`` detects fish by background subtraction; ``frcnn`` fine-tunes a torchvision Faster
R-CNN (ResNet-50 FPN) head detector on the train frames through :func:`harness.training.fit`.

This module imports neither torch nor OpenCV at import time: the CLI builds its parser from it.
"""

from __future__ import annotations

import argparse
import json
import logging
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from harness import atomic
from harness.config import load_preset_config, recorded_config
from harness.errors import FieldHarnessError, UnknownNameError
from harness.plugin import Baseline, EvalOutcome, RunContext
from zef3d.pipeline import PipelineSettings

__all__ = ["FRCNNBaseline", "NaiveBaseline", "PRESETS"]

logger = logging.getLogger(__name__)

DATASET = "zef3d"
SPLITS = ("train", "test")
VIEWS = ("top", "front")

PRESETS: dict[str, dict[str, str]] = {
    "naive": {"paper": "naive.toml", "sample": "naive-sample.toml"},
    "frcnn": {"paper": "frcnn.toml", "sample": "frcnn-sample.toml"},
}
"""Config presets per baseline: ``paper`` is the default, ``sample`` the one used on generated
sample data unless ``--config`` is given."""

TRACKS_FOLDER = "tracks"
PLOTS_FOLDER = "plots"
METRICS_FILE = "metrics.json"


@dataclass
class SequenceInput:
    """The inputs of the pipeline for one prepared sequence."""

    name: str
    seq_length: int
    settings: PipelineSettings
    cameras: dict[str, Any]
    frames: dict[str, list[Path]]
    """View -> frame paths in frame order."""


def _manifest(args: argparse.Namespace, ctx: RunContext):
    from harness.storage import read_manifest

    return read_manifest(DATASET, version=args.dataset_version, data_dir=ctx.data_dir)


def _check_settings_overrides(overrides: Mapping[str, Any], source: str) -> dict[str, Any]:
    from dataclasses import fields

    known = {field.name for field in fields(PipelineSettings)}
    for key in overrides:
        if key not in known:
            raise UnknownNameError(f"pipeline setting in [settings] of {source}", key,
                                   sorted(known))
    return dict(overrides)


def _load_sequences(args: argparse.Namespace, ctx: RunContext, split: str,
                    overrides: Mapping[str, Any]) -> list[SequenceInput]:
    """Read the prepared ``sequences`` table and build the inputs of the chosen sequences."""
    from harness.loading import load_dataset
    from zef3d.camera import Camera
    from zef3d.io import frame_paths

    table = load_dataset(DATASET, split, config="sequences", version=args.dataset_version,
                         data_dir=ctx.data_dir, format="polars")
    names = table["sequence"].to_list()
    chosen = args.sequences or names
    for name in chosen:
        if name not in names:
            raise UnknownNameError(f"sequence of the prepared {split} split", name, names)

    inputs = []
    for row in table.iter_rows(named=True):
        if row["sequence"] not in chosen:
            continue
        for view in VIEWS:
            if row[f"{view}_dir"] is None:
                raise FieldHarnessError(
                    f"sequence {row['sequence']} has no {view}-view frames in the prepared copy; "
                    "the baseline needs the frames of both views, so prepare the full archive")
        settings = PipelineSettings.from_settings(
            json.loads(row["settings"] or "{}"), source=f"{row['sequence']}/settings.ini",
            **overrides)
        cameras = {view: Camera.from_files(view, Path(row[f"{view}_intrinsic"]),
                                           Path(row[f"{view}_references"]))
                   for view in VIEWS}
        frames = {view: frame_paths(Path(row[f"{view}_dir"]).parent, view,
                                    seq_length=row["seq_length"])
                  for view in VIEWS}
        inputs.append(SequenceInput(row["sequence"], int(row["seq_length"]), settings, cameras,
                                    frames))
    return inputs


def _ground_truth(args: argparse.Namespace, ctx: RunContext) -> pl.DataFrame:
    from harness.loading import load_dataset

    return load_dataset(DATASET, "train", config="points", version=args.dataset_version,
                        data_dir=ctx.data_dir, format="polars",
                        columns=["sequence", "frame", "id", "x", "y", "z"])


def _json_ready(values: Mapping[str, Any]) -> dict[str, Any]:
    ready = {}
    for key, value in values.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            value = None
        ready[key] = value
    return ready


class _Zef3DBaseline(Baseline):
    """The parts that ``naive`` and ``frcnn`` share: data, pipeline, outputs and scores."""

    dataset: ClassVar[str] = DATASET
    method: ClassVar[str]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--version", default=None, dest="dataset_version", metavar="VERSION",
                            help="dataset version (default: the dataset's default version)")
        parser.add_argument("--split", choices=SPLITS, default="train",
                            help="split to track: train (scored against its ground truth) or "
                                 "test (tracks only; default: train)")
        parser.add_argument("--sequences", nargs="+", default=None, metavar="NAME",
                            help="sequences to track, e.g. ZebraFish-01 (default: all of the "
                                 "split)")
        parser.add_argument("--interpolate", action="store_true", default=None,
                            help="fill missing frames inside each track by linear "
                                 "interpolation of the 3D positions (default: the config's "
                                 "interpolate)")

    def _config(self, args: argparse.Namespace, data_kind: str) -> dict[str, Any]:
        config = load_preset_config(DATASET, PRESETS[self.method], args.config, args.overrides,
                                    data_kind=data_kind, run_name=f"3D-ZeF {self.method}")
        if args.interpolate:
            config["interpolate"] = True
        for key in ("device", "workers"):
            value = getattr(args, key, None)
            if value is not None:
                config[key] = value
        return config

    @abstractmethod
    def detect(self, sequence: SequenceInput, config: Mapping[str, Any],
               frame_count: int) -> dict[str, Any]:
        """Return the detections of both views (``{"top": Detections, "front": ...}``) in the
        first ``frame_count`` frames."""

    def prepare_detector(self, args: argparse.Namespace, ctx: RunContext,
                         config: Mapping[str, Any]) -> None:
        """Build or train the detector before the sequences are tracked (nothing by default)."""

    def settings_overrides(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Return the pipeline settings that replace the sequences' ``settings.ini`` values."""
        return _check_settings_overrides(config.get("settings", {}), f"the {self.method} config")

    def run(self, args: argparse.Namespace, ctx: RunContext) -> EvalOutcome:
        """Track every chosen sequence, write the tracks and plots, and score the train split."""
        from zef3d.io import write_tracks3d
        from zef3d.pipeline import tracks_from_detections
        from zef3d.pipeline.finalize import tracks_frame
        from zef3d.plots import plot_trajectories

        manifest = _manifest(args, ctx)
        config = self._config(args, manifest.data_kind)
        if int(config.get("max_frames", 0)) < 0:
            raise FieldHarnessError(f"invalid max_frames {config['max_frames']}; expected 0 "
                                    "(every frame) or a number of frames to track")
        sequences = _load_sequences(args, ctx, args.split, self.settings_overrides(config))
        if not sequences:
            raise FieldHarnessError(f"the prepared {args.split} split has no sequences")
        self.prepare_detector(args, ctx, config)

        gt = _ground_truth(args, ctx) if args.split == "train" else None
        files: list[Path] = []
        tracks_by_sequence: dict[str, pl.DataFrame] = {}
        gt_by_sequence: dict[str, pl.DataFrame] = {}
        limit = int(config.get("max_frames", 0))
        for sequence in sequences:
            frame_count = min(sequence.seq_length, limit) if limit > 0 else sequence.seq_length
            logger.info("tracking %s (%d frames)", sequence.name, frame_count)
            detections = self.detect(sequence, config, frame_count)
            tracks = tracks_from_detections(detections, sequence.cameras, sequence.settings,
                                            interpolate=bool(config["interpolate"]))
            table = tracks_frame(tracks)
            track_path = ctx.output_dir / TRACKS_FOLDER / f"{sequence.name}.txt"
            track_path.parent.mkdir(parents=True, exist_ok=True)
            write_tracks3d(track_path, table)
            files.append(track_path)
            tracks_by_sequence[sequence.name] = table

            sequence_gt = None
            if gt is not None:
                sequence_gt = gt.filter((pl.col("sequence") == sequence.name)
                                        & (pl.col("frame") <= frame_count)).drop("sequence")
                gt_by_sequence[sequence.name] = sequence_gt
            plot_path = ctx.output_dir / PLOTS_FOLDER / f"{sequence.name}.png"
            plot_path.parent.mkdir(parents=True, exist_ok=True)
            files.append(plot_trajectories(
                table, plot_path, gt=sequence_gt, title=f"{sequence.name}: {self.method}",
                tank=(sequence.settings.aquarium_width, sequence.settings.aquarium_depth)))

        recorded = recorded_config(config, ("device", "workers"), getattr(args, "weights", None))
        if gt is None:
            logger.info("the %s split has no public ground truth; wrote tracks only", args.split)
            return EvalOutcome(dataset=DATASET, method=self.method, metrics={},
                               version=manifest.version, split=args.split,
                               data_kind=manifest.data_kind, files=files, config=recorded)

        metrics, per_item = self._score(tracks_by_sequence, gt_by_sequence)
        metrics_path = ctx.output_dir / METRICS_FILE
        atomic.write_json(metrics_path, {"COMBINED": _json_ready(metrics),
                                         **{name: _json_ready(values)
                                            for name, values in per_item.items()}})
        files.append(metrics_path)
        return EvalOutcome(dataset=DATASET, method=self.method, metrics=metrics,
                           version=manifest.version, split=args.split, per_item=per_item,
                           data_kind=manifest.data_kind, files=files, config=recorded)

    @staticmethod
    def _score(tracks: Mapping[str, pl.DataFrame], gt: Mapping[str, pl.DataFrame]
               ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        """Score each sequence and all of them together with the 3D-ZeF evaluation."""
        from zef3d.evaluation import evaluate_sequences3d

        return evaluate_sequences3d(gt, tracks)


class NaiveBaseline(_Zef3DBaseline):
    """The 3D-ZeF baseline with the naive background-subtraction detector."""

    name: ClassVar[str] = "naive"
    method: ClassVar[str] = "naive"
    description: ClassVar[str] = (
        "3D-ZeF modular tracker with the naive background-subtraction detector: median "
        "background, blobs, 2D tracklets, cross-view matching and linking")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        presets = ", ".join(PRESETS[self.method])
        parser.add_argument(
            "--config", default=None, metavar="FILE_OR_PRESET",
            help=f"TOML file whose values replace the defaults, or a preset: {presets} "
                 "(default: paper; on generated sample data: sample)")
        parser.add_argument(
            "--set", action="append", dest="overrides", default=[], metavar="KEY=VALUE",
            help="set one config value after --config, e.g. --set interpolate=true or --set "
                 "settings.front_ghost_threshold=1.0 (repeatable)")

    def detect(self, sequence: SequenceInput, config: Mapping[str, Any],
               frame_count: int) -> dict[str, Any]:
        from zef3d.pipeline.background import background_from_paths
        from zef3d.pipeline.detection import detect_sequence

        detections = {}
        for view in VIEWS:
            paths = sequence.frames[view][:frame_count]
            background = background_from_paths(paths, sequence.settings.n_median)
            detections[view] = detect_sequence(view, paths, background, sequence.settings)
        return detections


class FRCNNBaseline(_Zef3DBaseline):
    """The 3D-ZeF baseline with a Faster R-CNN head detector (FRCNN-H)."""

    name: ClassVar[str] = "frcnn"
    method: ClassVar[str] = "frcnn"
    description: ClassVar[str] = (
        "3D-ZeF modular tracker with a torchvision Faster R-CNN (ResNet-50 FPN) head detector "
        "trained on the train frames (from random weights, or fine-tuned from --weights)")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from harness.config import add_training_arguments, non_negative_int

        super().add_arguments(parser)
        add_training_arguments(parser, presets=tuple(PRESETS[self.method]))
        parser.add_argument("--epochs", type=non_negative_int, default=None, metavar="N",
                            help="training epochs; 0 uses --weights without training "
                                 "(default: the config's epochs)")

    def _config(self, args: argparse.Namespace, data_kind: str) -> dict[str, Any]:
        config = super()._config(args, data_kind)
        if args.epochs is not None:
            config["epochs"] = args.epochs
        return config

    def settings_overrides(self, config: Mapping[str, Any]) -> dict[str, Any]:
        overrides = super().settings_overrides(config)
        overrides.setdefault("head_detector", True)
        return overrides

    def prepare_detector(self, args: argparse.Namespace, ctx: RunContext,
                         config: Mapping[str, Any]) -> None:
        from zef3d.pipeline.frcnn import train_head_detector

        samples = _training_samples(args, ctx, config)
        self.detector = train_head_detector(samples, config, ctx.output_dir / "detector",
                                            weights=args.weights, resume=args.resume,
                                            seed=ctx.seed)

    def detect(self, sequence: SequenceInput, config: Mapping[str, Any],
               frame_count: int) -> dict[str, Any]:
        from zef3d.pipeline.frcnn import detect_heads

        return {view: detect_heads(self.detector, sequence.frames[view][:frame_count], config,
                                   sequence.settings, view=view)
                for view in VIEWS}


def _training_samples(args: argparse.Namespace, ctx: RunContext,
                      config: Mapping[str, Any]) -> list[tuple[Path, np.ndarray]]:
    """Return (frame path, head points) of the train frames the head detector learns from.

    Frames of both views of every train sequence are used, evenly subsampled to at most
    ``max_train_frames`` (0 for all).
    """
    from harness.loading import load_dataset

    points = load_dataset(DATASET, "train", config="points", version=args.dataset_version,
                          data_dir=ctx.data_dir, format="polars")
    sequences = _load_sequences(argparse.Namespace(**{**vars(args), "sequences": None}), ctx,
                                "train", {})
    samples: list[tuple[Path, np.ndarray]] = []
    for sequence in sequences:
        rows = points.filter(pl.col("sequence") == sequence.name)
        for view in VIEWS:
            by_frame = rows.group_by("frame").agg(pl.col(f"{view}_x"), pl.col(f"{view}_y"))
            for frame, xs, ys in by_frame.sort("frame").iter_rows():
                if 1 <= frame <= len(sequence.frames[view]):
                    samples.append((sequence.frames[view][frame - 1],
                                    np.stack([xs, ys], axis=1).astype(np.float64)))
    limit = int(config.get("max_train_frames", 0))
    if limit > 0 and len(samples) > limit:
        keep = np.unique(np.linspace(0, len(samples) - 1, limit).round().astype(int))
        samples = [samples[index] for index in keep]
    if not samples:
        raise FieldHarnessError("the prepared train split has no annotated frames to train "
                                "the head detector on")
    return samples

