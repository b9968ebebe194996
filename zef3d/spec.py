"""Dataset spec of 3D-ZeF20: release, splits, prepared tables, licence and citation."""

from __future__ import annotations

import pyarrow as pa

from harness.spec import ConfigSpec, DatasetSpec, DatasetVersion, RemoteFile, SplitSpec
from motcom.spec import BOXES_SCHEMA

VERSION = "3DZeF20"

SEQUENCES = {
    "train": ("ZebraFish-01", "ZebraFish-02", "ZebraFish-03", "ZebraFish-04"),
    "test": ("ZebraFish-05", "ZebraFish-06", "ZebraFish-07", "ZebraFish-08"),
}
"""The sequences of the MOTChallenge 3D-ZeF20 release; ground truth is public for train only."""

# NOTE: assumed, not confirmed on the motchallenge.net data page; MOTChallenge's MOT17 and MOT20
# pages name CC BY-NC-SA 3.0.
LICENSE = "CC BY-NC-SA 4.0"

LEADERBOARD_METRICS = (
    "MOTA", "MOTP", "IDF1", "MT", "ML", "IDSW", "Frag", "MOTAL", "MTBF-std", "MTBF-mono")
"""Metrics of the 3D-ZeF evaluation shown in the leaderboard's table, in this order."""

POINTS_SCHEMA = pa.schema([
    ("sequence", pa.string()),
    ("frame", pa.int32()),
    ("id", pa.int64()),
    ("x", pa.float64()),
    ("y", pa.float64()),
    ("z", pa.float64()),
    ("top_x", pa.float64()),
    ("top_y", pa.float64()),
    ("top_occlusion", pa.int8()),
    ("front_x", pa.float64()),
    ("front_y", pa.float64()),
    ("front_occlusion", pa.int8()),
])
"""3D head positions in centimetres and the head point (pixels) of each view, per gt row."""

SEQUENCES_SCHEMA = pa.schema([
    ("sequence", pa.string()),
    ("seq_length", pa.int32()),
    ("frame_rate", pa.float64()),
    ("top_width", pa.int32()),
    ("top_height", pa.int32()),
    ("front_width", pa.int32()),
    ("front_height", pa.int32()),
    ("top_dir", pa.string()),
    ("front_dir", pa.string()),
    ("has_gt", pa.bool_()),
    ("settings", pa.string()),
    ("top_intrinsic", pa.string()),
    ("top_references", pa.string()),
    ("front_intrinsic", pa.string()),
    ("front_references", pa.string()),
])
"""One row per sequence; ``settings`` is ``settings.ini`` as JSON (section -> key -> text)."""

FRAMES_SCHEMA = pa.schema([
    ("sequence", pa.string()),
    ("view", pa.string()),
    ("frame", pa.int32()),
    ("image", pa.string()),
])
"""One row per frame image of each view; ``image`` is the absolute path of the JPEG."""

CONFIGS = (
    ConfigSpec(
        "points",
        "One row per gt.txt row: the 3D head position (x, y, z in centimetres, world "
        "coordinates of the calibration) and the head point and occlusion flag of the top and "
        "the front view (pixels).",
        POINTS_SCHEMA,
        default=True,
    ),
    ConfigSpec(
        "top",
        "The top view's ground-truth boxes as a MOTChallenge boxes table (flag 1, class 1); "
        "visibility is 1.0 for a fish that is not part of an occlusion in this view, else 0.0.",
        BOXES_SCHEMA,
    ),
    ConfigSpec(
        "front",
        "The front view's ground-truth boxes as a MOTChallenge boxes table (flag 1, class 1); "
        "visibility is 1.0 for a fish that is not part of an occlusion in this view, else 0.0.",
        BOXES_SCHEMA,
    ),
    ConfigSpec(
        "sequences",
        "One row per sequence: frame count, frame rate, image size and frame folder of each "
        "view, whether ground truth is present, settings.ini as JSON and the absolute paths "
        "of the calibration files.",
        SEQUENCES_SCHEMA,
    ),
    ConfigSpec(
        "frames",
        "One row per frame of each view (view 'top' or 'front', frame number from 1) with its "
        "image, decoded lazily by load_dataset. verify checks that every frame still exists, "
        "and publish embeds the images.",
        FRAMES_SCHEMA,
        image_columns=("image",),
    ),
)

SPLITS = (
    SplitSpec("train", "ZebraFish-01 to ZebraFish-04, with public ground truth."),
    SplitSpec("test", "ZebraFish-05 to ZebraFish-08; ground truth is kept by the benchmark "
              "server.", has_labels=False),
)

CITATION = """@inproceedings{Pedersen_2020_CVPR,
  title = {{3D-ZeF}: A {3D} Zebrafish Tracking Benchmark Dataset},
  author = {Pedersen, Malte and Haurum, Joakim Bruslund and Bengtson, Stefan Hein and
            Moeslund, Thomas B.},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern
               Recognition (CVPR)},
  pages = {2426--2436},
  year = {2020}
}"""

# MOTChallenge publishes no checksums or row counts for the 3D-ZeF20 archive, so they stay empty.
ZEF3D_SPEC = DatasetSpec(
    name="zef3d",
    title="3D-ZeF20",
    description="3D zebrafish tracking benchmark (MOTChallenge 3D-ZeF20): 8 sequences of 1 to "
                "10 zebrafish filmed by a top and a front camera, with 3D head positions and "
                "per-view head points and boxes; train ZebraFish-01 to -04, test -05 to -08. "
                "The licence CC BY-NC-SA 4.0 is assumed, not confirmed on motchallenge.net.",
    homepage="https://motchallenge.net/data/3D-ZeF20/",
    license=LICENSE,
    redistributable=False,
    citation=CITATION,
    versions=(
        DatasetVersion(
            name=VERSION,
            description="The 3D-ZeF20 archive as distributed by motchallenge.net "
                        "(3DZeF20.zip: frames of both views, gt/gt.txt, settings.ini and "
                        "calibration of every sequence).",
            files=(RemoteFile("3DZeF20.zip", ("https://motchallenge.net/data/3DZeF20.zip",)),),
        ),
    ),
    splits=SPLITS,
    configs=CONFIGS,
    default_version=VERSION,
)
