"""The MOT17 and MOT20 dataset plugins and the standalone ``motchallenge`` evaluator.

Registered through the entry points ``fieldharness.datasets`` (``mot17``, ``mot20``) and
``fieldharness.evaluators`` (``motchallenge``) in ``pyproject.toml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from harness.plugin import DatasetPlugin, Evaluator, PreparedData, PublishedResult
from harness.spec import DatasetSpec
from motcom.eval_cli import MOTChallengeEvaluator, PreparedMOTEvaluator
from motcom.prepare import read_mot_source
from motcom.sample import write_mot_sample
from motcom.spec import MOT17_SPEC, MOT20_SPEC

__all__ = ["MOT17Plugin", "MOT20Plugin", "MOTChallengeEvaluator"]

SAMPLE_SEQUENCES = 2
SAMPLE_FRAMES = 40
SAMPLE_PEDESTRIANS = 6


BYTETRACK_SOURCE = ("Zhang et al., ByteTrack: Multi-Object Tracking by Associating Every "
                    "Detection Box, ECCV 2022, arXiv:2110.06864")

# Test-set numbers from the MOTChallenge server as the ByteTrack paper reports them (MOT17 in its
# abstract, MOT20 in its MOT20 test table). Local scores are on train: these are context, not
# targets.
BYTETRACK_TEST = {
    "mot17": {"HOTA": 63.1, "MOTA": 80.3, "IDF1": 77.3},
    "mot20": {"HOTA": 61.3, "MOTA": 77.8, "IDF1": 75.2},
}


class _MOTPlugin(DatasetPlugin):
    benchmark: ClassVar[str]
    leaderboard_metrics: ClassVar[tuple[str, ...]] = (
        "HOTA", "DetA", "AssA", "MOTA", "MOTP", "IDF1", "IDSW", "Frag")

    def read_source(self, source: Path, *, version: str | None = None) -> PreparedData:
        """Read the official download at or above the split folders in ``source``.

        Both the archive layout (``MOT17/train/<seq>/...``) and TrackEval's layout
        (``gt/mot_challenge/MOT17-train/<seq>/...``) are found; see :mod:`motcom.layout`.

        Raises:
            FileNotFoundError: no sequence of the benchmark was found under ``source``.
            harness.errors.DataFormatError: a file does not follow the official format.
        """
        return read_mot_source(self.spec, self.benchmark, source, version)

    def generate_sample(self, out_dir: Path, *, seed: int = 0) -> Path:
        """Write a small synthetic train set with JPEG frames and a noisy tracker's output.

        The tracker's files are in ``<out_dir>/trackers/noisytracker/``.
        """
        return write_mot_sample(
            out_dir,
            benchmark=self.benchmark,
            seed=seed,
            sequences=SAMPLE_SEQUENCES,
            frames=SAMPLE_FRAMES,
            pedestrians=SAMPLE_PEDESTRIANS,
            images=True,
        )

    def evaluator(self) -> Evaluator:
        """Return the evaluator behind ``python -m harness eval mot17`` (or ``mot20``)."""
        return PreparedMOTEvaluator(self.spec.name, self.benchmark)

    def published_results(self) -> list[PublishedResult]:
        """Return ByteTrack's published test-set HOTA, MOTA and IDF1 as reference rows."""
        numbers = BYTETRACK_TEST[self.spec.name]
        return [PublishedResult(dataset=self.spec.name, split="test", method="ByteTrack",
                                metric=metric, value=value, source=BYTETRACK_SOURCE)
                for metric, value in numbers.items()]


class MOT17Plugin(_MOTPlugin):
    """MOT17: 7 train and 7 test sequences, each in a DPM, FRCNN and SDP copy."""

    spec: ClassVar[DatasetSpec] = MOT17_SPEC
    benchmark: ClassVar[str] = "MOT17"


class MOT20Plugin(_MOTPlugin):
    """MOT20: 4 train and 4 test sequences of crowded scenes."""

    spec: ClassVar[DatasetSpec] = MOT20_SPEC
    benchmark: ClassVar[str] = "MOT20"
