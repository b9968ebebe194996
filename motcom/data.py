"""In-memory MOTChallenge data: one sequence's ground truth and one tracker's boxes as arrays.

Readers (``motcom.io``) build these from the official text files; the evaluation
(``motcom.evaluation``) consumes them. Boxes are ``left, top, width, height`` in pixels, frames are
1-based as in the files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SequenceInfo:
    """The ``[Sequence]`` section of a ``seqinfo.ini`` file."""

    name: str
    seq_length: int
    frame_rate: float | None = None
    im_width: int | None = None
    im_height: int | None = None
    im_dir: str = "img1"
    im_ext: str = ".jpg"


@dataclass(frozen=True)
class GroundTruth:
    """Ground-truth rows of one sequence, in file order.

    MOT15 files (10 columns) carry no class or visibility; readers fill ``cls`` with 1 and
    ``visibility`` with 1.0 for them, as TrackEval does for MOT15.
    """

    frame: np.ndarray  # int64, 1-based
    id: np.ndarray  # int64
    boxes: np.ndarray  # float64, shape (n, 4): left, top, width, height
    flag: np.ndarray  # float64, the "consider" column (0 = ignore)
    cls: np.ndarray  # int64 class id (1 = pedestrian)
    visibility: np.ndarray  # float64 in [0, 1]

    def __len__(self) -> int:
        return int(self.frame.shape[0])


@dataclass(frozen=True)
class Tracks:
    """A tracker's output for one sequence, in file order."""

    frame: np.ndarray  # int64, 1-based
    id: np.ndarray  # int64
    boxes: np.ndarray  # float64, shape (n, 4)
    conf: np.ndarray  # float64; ignored by CLEAR, Identity and HOTA

    def __len__(self) -> int:
        return int(self.frame.shape[0])


def empty_tracks() -> Tracks:
    """Return a tracker output without boxes (an empty ``<seq>.txt``)."""
    return Tracks(
        frame=np.zeros(0, np.int64),
        id=np.zeros(0, np.int64),
        boxes=np.zeros((0, 4), np.float64),
        conf=np.zeros(0, np.float64),
    )
