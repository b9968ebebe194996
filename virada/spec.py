"""Dataset spec of VIRADA: release, splits, prepared tables, licence and citation."""

from __future__ import annotations

import pyarrow as pa

from harness.spec import ConfigSpec, DatasetSpec, DatasetVersion, SplitSpec

HOMEPAGE = "https://zenodo.org/records/4715681"
CODE_URLS = (
    "https://bitbucket.org/aauvap/aau-virada",
    "https://github.com/chrisbahnsen/aau-virada",
)

SPLIT_FOLDERS = {"train": "train", "val": "val", "test": "tst"}
"""Split name -> folder of the official layout; the test split lives in ``tst/``."""

VIDEOS_SCHEMA = pa.schema([
    ("split", pa.string()),
    ("video", pa.string()),
    ("file_name", pa.string()),
    ("stem", pa.string()),
    ("crossing", pa.int8()),
    ("side", pa.string()),
    ("start", pa.timestamp("s")),
    ("fps", pa.float64()),
    ("frame_count", pa.int64()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("labels", pa.list_(pa.float64())),
    ("per_file", pa.bool_()),
    ("frame_offset", pa.int64()),
    ("fpm", pa.int64()),
    ("timestamps", pa.list_(pa.string())),
    ("label_source", pa.string()),
])

MINUTES_SCHEMA = pa.schema([
    ("split", pa.string()),
    ("stem", pa.string()),
    ("file_name", pa.string()),
    ("minute", pa.int32()),
    ("label", pa.float64()),
    ("timestamp", pa.string()),
    ("first_frame", pa.int64()),
    ("stop_frame", pa.int64()),
])

CITATION = """@inproceedings{Haurum2019Raining,
  title = {Is it Raining Outside? {Detection} of Rainfall using General-Purpose Surveillance
           Cameras},
  author = {Haurum, Joakim Bruslund and Bahnsen, Chris H. and Moeslund, Thomas B.},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern
               Recognition (CVPR) Workshops},
  pages = {55--64},
  year = {2019}
}"""

VIRADA_SPEC = DatasetSpec(
    name="virada",
    title="VIRADA (AAU Visual Rain Dataset)",
    description="215 hours of surveillance video of two traffic crossings in Aalborg, Denmark, "
                "with one rain label per minute derived from the nearest municipal rain gauge.",
    homepage=HOMEPAGE,
    # NOTE: the licence text of the Zenodo record could not be read while this was written.
    license="see the Zenodo record " + HOMEPAGE,
    redistributable=False,
    citation=CITATION,
    versions=(
        DatasetVersion(
            name="1.0",
            description="The release on Zenodo record 4715681: videos in train/, val/ and tst/ "
                        "and the per-minute label JSON in labels/. Code: "
                        + ", ".join(CODE_URLS) + ".",
            # The Zenodo record lists its files on a web page. No direct file URL or checksum was
            # available when this spec was written, so download has nothing to fetch.
            files=(),
        ),
    ),
    splits=(
        SplitSpec("train", "Training videos (folder train/)."),
        SplitSpec("val", "Validation videos (folder val/)."),
        SplitSpec("test", "Test videos (folder tst/)."),
    ),
    configs=(
        ConfigSpec(
            "videos",
            "One row per video: its absolute path, the fields parsed from its name, the stream's "
            "fps, frame count and size, and its label entry (per-minute labels, frameOffset, FPM, "
            "gauge timestamps); label_source is 'json' or 'gauges'.",
            VIDEOS_SCHEMA,
            default=True,
        ),
        ConfigSpec(
            "minutes",
            "One row per video minute: its label, the gauge timestamp and the frames "
            "[first_frame, stop_frame) that the frame to minute rule maps to it.",
            MINUTES_SCHEMA,
        ),
    ),
    default_version="1.0",
    split_aliases={"tst": ("test",)},
)
