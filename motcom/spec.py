"""Dataset specs of MOT17 and MOT20: releases, splits, prepared tables, licence and citation.

Sequence lists, frame counts and row counts come from the official train files (the
``seqinfo.ini`` and ``gt/gt.txt`` of every sequence).
"""

from __future__ import annotations

import pyarrow as pa

from harness.spec import ConfigSpec, DatasetSpec, DatasetVersion, RemoteFile, SplitSpec

LICENSE = "CC BY-NC-SA 3.0"
"""Licence of the MOTChallenge sequences and annotations (motchallenge.net data pages)."""

MOT17_SEQUENCES = {
    "train": ("MOT17-02", "MOT17-04", "MOT17-05", "MOT17-09", "MOT17-10", "MOT17-11", "MOT17-13"),
    "test": ("MOT17-01", "MOT17-03", "MOT17-06", "MOT17-07", "MOT17-08", "MOT17-12", "MOT17-14"),
}
"""Base sequences of MOT17; every one has a ``-DPM``, ``-FRCNN`` and ``-SDP`` copy."""

MOT20_SEQUENCES = {
    "train": ("MOT20-01", "MOT20-02", "MOT20-03", "MOT20-05"),
    "test": ("MOT20-04", "MOT20-06", "MOT20-07", "MOT20-08"),
}

BOXES_SCHEMA = pa.schema([
    ("sequence", pa.string()),
    ("frame", pa.int32()),
    ("id", pa.int64()),
    ("left", pa.float64()),
    ("top", pa.float64()),
    ("width", pa.float64()),
    ("height", pa.float64()),
    ("flag", pa.float64()),
    ("class", pa.int32()),
    ("visibility", pa.float64()),
])

FRAMES_SCHEMA = pa.schema([
    ("sequence", pa.string()),
    ("frame", pa.int32()),
    ("image", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("ids", pa.list_(pa.int64())),
    ("boxes", pa.list_(pa.list_(pa.float64()))),
    ("classes", pa.list_(pa.int32())),
    ("flags", pa.list_(pa.float64())),
    ("visibility", pa.list_(pa.float64())),
])

DETECTIONS_SCHEMA = pa.schema([
    ("sequence", pa.string()),
    ("detector", pa.string()),
    ("frame", pa.int32()),
    ("left", pa.float64()),
    ("top", pa.float64()),
    ("width", pa.float64()),
    ("height", pa.float64()),
    ("score", pa.float64()),
])

SEQUENCES_SCHEMA = pa.schema([
    ("sequence", pa.string()),
    ("seq_length", pa.int32()),
    ("frame_rate", pa.float64()),
    ("im_width", pa.int32()),
    ("im_height", pa.int32()),
    ("im_dir", pa.string()),
    ("im_ext", pa.string()),
    ("detectors", pa.list_(pa.string())),
    ("copies", pa.list_(pa.string())),
    ("has_gt", pa.bool_()),
    ("gt_copy", pa.string()),
])


def _configs(detector_text: str) -> tuple[ConfigSpec, ...]:
    return (
        ConfigSpec(
            "boxes",
            "One row per ground-truth box of every class (distractors included, since the "
            "evaluation needs them), in the order of gt.txt; 'flag' 0 marks rows to ignore.",
            BOXES_SCHEMA,
            default=True,
        ),
        ConfigSpec(
            "frames",
            "One row per frame: the absolute path of the image in the source folder, its size "
            "and that frame's ground-truth boxes (left, top, width, height) as list columns.",
            FRAMES_SCHEMA,
            image_columns=("image",),
        ),
        ConfigSpec(
            "detections",
            f"The public detections (det/det.txt){detector_text}; score is the raw detector "
            "score.",
            DETECTIONS_SCHEMA,
        ),
        ConfigSpec(
            "sequences",
            "One row per sequence: the seqinfo.ini fields (seq_length is the seqLength the "
            "evaluation needs) and the detector copies found.",
            SEQUENCES_SCHEMA,
        ),
    )


SPLITS = (
    SplitSpec("train", "Training sequences with public ground truth."),
    SplitSpec("test", "Test sequences; ground truth is kept by the benchmark server.",
              has_labels=False),
)

# MOTChallenge publishes no checksums or sizes for its archives, so md5 and sha256 stay None.
MOT17_SPEC = DatasetSpec(
    name="mot17",
    title="MOT17",
    description="MOTChallenge 2017 pedestrian tracking benchmark: 14 sequences (7 train, 7 "
                "test), each in three copies with the public detections of DPM, Faster R-CNN "
                "and SDP.",
    homepage="https://motchallenge.net/data/MOT17/",
    license=LICENSE,
    redistributable=False,
    citation="""@article{MOT16,
  title = {{MOT16}: A Benchmark for Multi-Object Tracking},
  author = {Milan, Anton and Leal-Taix{\\'e}, Laura and Reid, Ian and Roth, Stefan and
            Schindler, Konrad},
  journal = {arXiv:1603.00831 [cs]},
  year = {2016}
}""",
    versions=(
        DatasetVersion(
            name="1.0",
            description="The MOT17 release as distributed by motchallenge.net (MOT17.zip with "
                        "images, MOT17Labels.zip with annotations and detections only).",
            files=(
                RemoteFile("MOT17.zip", ("https://motchallenge.net/data/MOT17.zip",)),
                RemoteFile("MOT17Labels.zip", ("https://motchallenge.net/data/MOT17Labels.zip",)),
            ),
            row_counts={
                # 613,503 rows over the 21 copies; 112,297 class-1 (pedestrian) rows per copy set.
                "boxes/train": 204_501,
                "frames/train": 5_316,
                "sequences/train": 7,
                "sequences/test": 7,
            },
        ),
    ),
    splits=SPLITS,
    configs=_configs(", one row per box and detector copy, named in 'detector'"),
    default_version="1.0",
)

MOT20_SPEC = DatasetSpec(
    name="mot20",
    title="MOT20",
    description="MOTChallenge 2020 benchmark of pedestrian tracking in crowded scenes: 8 "
                "sequences (4 train, 4 test).",
    homepage="https://motchallenge.net/data/MOT20/",
    license=LICENSE,
    redistributable=False,
    citation="""@article{MOTChallenge20,
  title = {{MOT20}: A benchmark for multi object tracking in crowded scenes},
  author = {Dendorfer, Patrick and Rezatofighi, Hamid and Milan, Anton and Shi, Javen and
            Cremers, Daniel and Reid, Ian and Roth, Stefan and Schindler, Konrad and
            Leal-Taix{\\'e}, Laura},
  journal = {arXiv:2003.09003 [cs]},
  year = {2020}
}""",
    versions=(
        DatasetVersion(
            name="1.0",
            description="The MOT20 release as distributed by motchallenge.net (MOT20.zip with "
                        "images, MOT20Labels.zip with annotations and detections only).",
            files=(
                RemoteFile("MOT20.zip", ("https://motchallenge.net/data/MOT20.zip",)),
                RemoteFile("MOT20Labels.zip", ("https://motchallenge.net/data/MOT20Labels.zip",)),
            ),
            row_counts={
                # MOT20-01 alone has 19,870 pedestrian rows (26,647 rows of all classes).
                "frames/train": 8_931,
                "sequences/train": 4,
                "sequences/test": 4,
            },
        ),
    ),
    splits=SPLITS,
    configs=_configs(""),
    default_version="1.0",
)

SEQUENCES_BY_BENCHMARK = {"MOT17": MOT17_SEQUENCES, "MOT20": MOT20_SEQUENCES}
