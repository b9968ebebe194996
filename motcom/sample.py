"""Synthetic MOT17- or MOT20-style train sets in the official layouts, with a tracker's output.

The data are made up. Pedestrians move smoothly through the frame with changing visibility.
Distractors (classes 2, 7, 8, 12, and 6 for MOT20) and other objects (classes 9, 10, 11) carry
flag 0 as in the official files. A simulated tracker adds jitter, misses, false positives, id
switches and boxes on distractors. Every box is computed with vectorised numpy, so a set the
size of MOT17 train (``sequences=7, frames=760, pedestrians=21``: about 340,000 ground-truth
rows over the 21 copies) is written in seconds.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from harness.errors import UnknownNameError
from harness.plugin import SAMPLE_MARKER
from motcom.layout import DETECTORS
from motcom.spec import SEQUENCES_BY_BENCHMARK

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

IMAGE_SIZE = (640, 480)
"""Width and height of the sample frames in pixels (MOT17-05's resolution)."""

FRAME_RATE = {"MOT17": 30, "MOT20": 25}
DISTRACTOR_CLASSES = {"MOT17": (2, 7, 8, 12), "MOT20": (2, 6, 7, 8, 12)}
OTHER_CLASSES = (9, 10, 11)
LAYOUTS = ("motchallenge", "trackeval")


@dataclass(frozen=True)
class _Boxes:
    """Ground-truth rows of one sequence, sorted by id then frame like the official files."""

    frame: np.ndarray
    id: np.ndarray
    boxes: np.ndarray  # (n, 4) left, top, width, height
    flag: np.ndarray
    cls: np.ndarray
    visibility: np.ndarray


def write_mot_sample(
    root: PathLike,
    *,
    benchmark: str = "MOT17",
    seed: int = 0,
    sequences: int = 3,
    frames: int = 60,
    pedestrians: int = 8,
    layout: str = "motchallenge",
    tracker: str = "noisytracker",
    images: bool = False,
) -> Path:
    """Write a synthetic train set and one tracker's output under ``root``; return ``root``.

    Layout ``"motchallenge"`` writes ``root/<benchmark>/train/<seq>/{seqinfo.ini, gt/gt.txt,
    det/det.txt}`` (``img1/`` with ``images=True``) and ``root/trackers/<tracker>/<seq>.txt``.
    Layout ``"trackeval"`` writes TrackEval's ``root/gt/mot_challenge/<benchmark>-train/<seq>/``,
    ``root/gt/mot_challenge/seqmaps/<benchmark>-train.txt`` and
    ``root/trackers/mot_challenge/<benchmark>-train/<tracker>/data/<seq>.txt``. MOT17 sequences
    get a DPM, FRCNN and SDP copy with the same ground truth and different detections and tracker
    noise. The file :data:`harness.plugin.SAMPLE_MARKER` marks ``root`` as generated data.

    Args:
        root: output folder (created; existing files of the same names are replaced).
        benchmark: ``"MOT17"`` or ``"MOT20"``.
        seed: random seed; the same arguments give byte-identical files.
        sequences: number of train sequences, named like the official ones (at most 7 for
            MOT17, 4 for MOT20).
        frames: frames per sequence (``seqLength``).
        pedestrians: mean number of pedestrians per frame.
        layout: ``"motchallenge"`` or ``"trackeval"``.
        tracker: name of the tracker folder.
        images: also write small JPEG frames (``img1/000001.jpg``...).

    Raises:
        harness.errors.UnknownNameError: ``benchmark`` or ``layout`` is not known.
        ValueError: ``sequences``, ``frames`` or ``pedestrians`` is out of range.
    """
    if benchmark not in SEQUENCES_BY_BENCHMARK:
        raise UnknownNameError("benchmark", benchmark, SEQUENCES_BY_BENCHMARK)
    if layout not in LAYOUTS:
        raise UnknownNameError("layout", layout, LAYOUTS)
    names = SEQUENCES_BY_BENCHMARK[benchmark]["train"]
    if not 1 <= sequences <= len(names):
        raise ValueError(f"sequences must be from 1 to {len(names)} for {benchmark}, "
                         f"got {sequences}")
    if frames < 2 or pedestrians < 1:
        raise ValueError(f"frames must be >= 2 and pedestrians >= 1, got {frames} and "
                         f"{pedestrians}")

    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    (root / SAMPLE_MARKER).write_text(
        f"Synthetic {benchmark} sample written by motcom.sample (seed {seed}); not real data.\n"
    )
    if layout == "motchallenge":
        gt_root = root / benchmark / "train"
        tracker_dir = root / "trackers" / tracker
    else:
        gt_root = root / "gt" / "mot_challenge" / f"{benchmark}-train"
        tracker_dir = root / "trackers" / "mot_challenge" / f"{benchmark}-train" / tracker / "data"
    tracker_dir.mkdir(parents=True, exist_ok=True)

    copy_names = []
    for index, base in enumerate(names[:sequences]):
        rng = np.random.default_rng([seed, index])
        gt = _ground_truth(rng, benchmark, frames, pedestrians)
        detectors = DETECTORS if benchmark == "MOT17" else (None,)
        first_images: Path | None = None
        for copy_index, detector in enumerate(detectors):
            name = f"{base}-{detector}" if detector else base
            copy_names.append(name)
            folder = gt_root / name
            _write_seqinfo(folder / "seqinfo.ini", name, benchmark, frames)
            _write_rows(folder / "gt" / "gt.txt", _gt_columns(gt))
            noise = np.random.default_rng([seed, index, copy_index + 1])
            if layout == "motchallenge":
                _write_rows(folder / "det" / "det.txt", _detections(noise, gt, detector))
                if images:
                    first_images = _write_images(folder / "img1", gt, frames, first_images)
            _write_rows(tracker_dir / f"{name}.txt", _tracker_output(noise, gt, frames))

    if layout == "trackeval":
        seqmap = root / "gt" / "mot_challenge" / "seqmaps" / f"{benchmark}-train.txt"
        seqmap.parent.mkdir(parents=True, exist_ok=True)
        seqmap.write_text("name\n" + "".join(f"{name}\n" for name in copy_names))
    logger.info("wrote a synthetic %s sample with %d sequences to %s", benchmark,
                len(copy_names), root)
    return root


# ---------------------------------------------------------------------------------------------
# Ground truth


def _ground_truth(
    rng: np.random.Generator, benchmark: str, frames: int, pedestrians: int
) -> _Boxes:
    """Draw the tracks of one sequence: each of ``pedestrians`` slots is filled by a run of
    tracks with short gaps, and a few slots hold distractors and other objects."""
    distractor_slots = max(2, pedestrians // 5)
    other_slots = max(1, pedestrians // 8)
    distractors = list(rng.choice(DISTRACTOR_CLASSES[benchmark], distractor_slots))
    if benchmark == "MOT20":
        distractors[0] = 6  # the class only MOT20's preprocessing treats as a distractor
    slot_classes = [1] * pedestrians + distractors + list(rng.choice(OTHER_CLASSES, other_slots))

    starts, ends, classes = [], [], []
    for cls in slot_classes:
        frame = int(rng.integers(1, max(2, frames // 4)))
        while frame <= frames:
            length = int(rng.integers(max(2, frames // 4), max(3, frames)))
            end = min(frames, frame + length - 1)
            starts.append(frame)
            ends.append(end)
            classes.append(int(cls))
            frame = end + 1 + int(rng.integers(1, max(2, frames // 10)))
    starts_a, ends_a = np.asarray(starts), np.asarray(ends)
    tracks = len(starts)

    # One row per (track, frame), tracks in id order, frames ascending within a track.
    lengths = ends_a - starts_a + 1
    track = np.repeat(np.arange(tracks), lengths)
    offset = np.arange(track.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    frame = starts_a[track] + offset

    width_px, height_px = IMAGE_SIZE
    box_w = rng.uniform(12, 40, tracks)
    box_h = box_w * rng.uniform(2.0, 3.0, tracks)
    x0 = rng.uniform(0, width_px - box_w)
    y0 = rng.uniform(0, height_px - box_h)
    vx = rng.normal(0, 1.5, tracks)
    vy = rng.normal(0, 0.3, tracks)
    phase = rng.uniform(0, 2 * np.pi, tracks)
    t = offset.astype(np.float64)
    scale = np.clip(1 + 0.001 * t * np.sign(vy[track]), 0.7, 1.4)
    w = box_w[track] * scale
    h = box_h[track] * scale
    left = np.clip(x0[track] + vx[track] * t + 3 * np.sin(t / 15 + phase[track]), 0, width_px - w)
    top = np.clip(y0[track] + vy[track] * t, 0, np.maximum(height_px - h, 0))
    visibility = np.clip(0.55 + 0.5 * np.sin(t / 20 + phase[track]), 0, 1)

    cls = np.asarray(classes)[track]
    return _Boxes(
        frame=frame.astype(np.int64),
        id=(track + 1).astype(np.int64),
        boxes=np.round(np.column_stack([left, top, w, h])),
        flag=(cls == 1).astype(np.int64),
        cls=cls.astype(np.int64),
        visibility=np.round(visibility, 5),
    )


def _gt_columns(gt: _Boxes) -> dict[str, np.ndarray]:
    return {
        "frame": gt.frame, "id": gt.id,
        "left": gt.boxes[:, 0].astype(np.int64), "top": gt.boxes[:, 1].astype(np.int64),
        "width": gt.boxes[:, 2].astype(np.int64), "height": gt.boxes[:, 3].astype(np.int64),
        "flag": gt.flag, "class": gt.cls, "visibility": gt.visibility,
    }


# ---------------------------------------------------------------------------------------------
# Detections and tracker output


def _jitter(rng: np.random.Generator, boxes: np.ndarray, amount: float) -> np.ndarray:
    size = np.repeat(boxes[:, 2:4], 2, axis=1)[:, [0, 2, 1, 3]]
    noisy = boxes + rng.normal(0, amount, boxes.shape) * size
    noisy[:, 2:4] = np.maximum(noisy[:, 2:4], 2)
    return np.round(noisy, 2)


def _false_positives(rng: np.random.Generator, frames: int, count: int) -> tuple[np.ndarray,
                                                                                 np.ndarray]:
    width_px, height_px = IMAGE_SIZE
    frame = np.sort(rng.integers(1, frames + 1, count))
    w = rng.uniform(12, 40, count)
    h = w * rng.uniform(2.0, 3.0, count)
    boxes = np.column_stack([rng.uniform(0, width_px - w), rng.uniform(0, height_px - h), w, h])
    return frame, np.round(boxes, 2)


def _detections(rng: np.random.Generator, gt: _Boxes, detector: str | None) -> dict:
    """Public detections: visible pedestrians with jitter and misses, plus false positives."""
    keep = (gt.cls == 1) & (gt.visibility > 0.25) & (rng.random(len(gt.frame)) < 0.85)
    boxes = _jitter(rng, gt.boxes[keep], 0.05)
    frame = gt.frame[keep]
    fp_frame, fp_boxes = _false_positives(rng, int(gt.frame.max()), max(1, keep.sum() // 10))
    frame = np.concatenate([frame, fp_frame])
    boxes = np.concatenate([boxes, fp_boxes])
    # DPM reports raw SVM scores (may be negative or above 1); FRCNN and SDP report [0, 1].
    if detector == "DPM":
        score = rng.normal(0.5, 0.8, len(frame))
    else:
        score = rng.uniform(0.3, 1.0, len(frame))
    order = np.argsort(frame, kind="stable")
    return _tracker_columns(frame[order], np.full(len(frame), -1), boxes[order],
                            np.round(score[order], 3))


def _tracker_output(rng: np.random.Generator, gt: _Boxes, frames: int) -> dict:
    """Simulate a tracker's output: jittered pedestrians with misses, id switches, false positives
    and some boxes on distractors (which the MOT17/MOT20 preprocessing removes)."""
    n = len(gt.frame)
    pedestrian = gt.cls == 1
    distractor = np.isin(gt.cls, (2, 6, 7, 8, 12))
    keep = (pedestrian & (rng.random(n) < 0.9)) | (distractor & (rng.random(n) < 0.3))

    ids = gt.id.copy()
    # An id switch: from a random frame on, the track gets a fresh id.
    tracks = np.unique(gt.id[pedestrian])
    switched = rng.choice(tracks, size=max(1, len(tracks) // 4), replace=False)
    next_id = int(gt.id.max()) + 1
    for track in switched:
        rows = np.flatnonzero(gt.id == track)
        cut = rows[int(rng.integers(0, len(rows)))]
        ids[(gt.id == track) & (gt.frame >= gt.frame[cut])] = next_id
        next_id += 1

    frame = gt.frame[keep]
    boxes = _jitter(rng, gt.boxes[keep], 0.04)
    ids = ids[keep]
    fp_frame, fp_boxes = _false_positives(rng, frames, max(1, int(keep.sum()) // 20))
    fp_ids = np.arange(next_id, next_id + len(fp_frame))
    frame = np.concatenate([frame, fp_frame])
    ids = np.concatenate([ids, fp_ids])
    boxes = np.concatenate([boxes, fp_boxes])
    conf = np.round(rng.uniform(0.4, 1.0, len(frame)), 3)
    order = np.lexsort((ids, frame))
    return _tracker_columns(frame[order], ids[order], boxes[order], conf[order])


def _tracker_columns(frame, ids, boxes, conf) -> dict[str, np.ndarray]:
    minus_one = np.full(len(frame), -1, np.int64)
    return {
        "frame": frame.astype(np.int64), "id": ids.astype(np.int64),
        "left": boxes[:, 0], "top": boxes[:, 1], "width": boxes[:, 2], "height": boxes[:, 3],
        "conf": conf, "x": minus_one, "y": minus_one, "z": minus_one,
    }


# ---------------------------------------------------------------------------------------------
# Files


def _write_rows(path: Path, columns: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    pacsv.write_csv(pa.table(columns), buffer,
                    pacsv.WriteOptions(include_header=False, quoting_style="none"))
    path.write_bytes(buffer.getvalue())


def _write_seqinfo(path: Path, name: str, benchmark: str, frames: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = IMAGE_SIZE
    path.write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate={FRAME_RATE[benchmark]}\n"
        f"seqLength={frames}\nimWidth={width}\nimHeight={height}\nimExt=.jpg\n\n"
    )


def _write_images(folder: Path, gt: _Boxes, frames: int, previous: Path | None) -> Path:
    """Write one JPEG per frame with the boxes drawn.

    Later copies of the same sequence get hard links to the first copy's files, or file copies
    where the file system does not support links.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if previous is not None:
        for source in sorted(previous.glob("*.jpg")):
            target = folder / source.name
            target.unlink(missing_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        return previous

    from PIL import Image, ImageDraw

    order = np.argsort(gt.frame, kind="stable")
    starts = np.searchsorted(gt.frame[order], np.arange(1, frames + 2))
    palette = np.random.default_rng(0).integers(40, 255, size=(int(gt.id.max()) + 1, 3))
    for frame in range(1, frames + 1):
        image = Image.new("RGB", IMAGE_SIZE, (96, 96, 96))
        draw = ImageDraw.Draw(image)
        for row in order[starts[frame - 1]:starts[frame]]:
            left, top, width, height = gt.boxes[row]
            draw.rectangle([left, top, left + width, top + height],
                           fill=tuple(int(c) for c in palette[gt.id[row]]))
        image.save(folder / f"{frame:06d}.jpg", quality=70)
    return folder
