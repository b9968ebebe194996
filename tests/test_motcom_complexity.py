"""MOTCOM's OCOM and MCOM against the reference implementation's numbers and hand-worked cases,
and ``python -m harness run mot17|mot20 motcom`` end to end on generated data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from harness import registry
from harness.cli import main
from harness.errors import DataFormatError, FieldHarnessError, UnknownNameError
from motcom.complexity import (
    ALPHAS,
    MotcomGroundTruth,
    compute_complexity,
    mcom,
    mcom_displacement,
    motcom_ground_truth,
    ocom,
)
from motcom.data import GroundTruth, SequenceInfo
from motcom.motcom_run import (
    CSV_COLUMNS,
    MOT17MotcomBaseline,
    MOT20MotcomBaseline,
    complexity_of_folder,
    complexity_of_prepared,
    motcom_beside_scores,
)
from motcom.sample import write_mot_sample

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MOT_ROOT = SHARED / "realdata" / "mot"
needs_realdata = pytest.mark.skipif(
    not MOT_ROOT.is_dir(), reason=f"real MOTChallenge files not found at {MOT_ROOT}")


@pytest.fixture(autouse=True)
def registered():
    registry.register_baseline("mot17", "motcom", MOT17MotcomBaseline)
    registry.register_baseline("mot20", "motcom", MOT20MotcomBaseline)


def ground_truth(rows: list[tuple]) -> GroundTruth:
    """Build a GroundTruth from ``(frame, id, left, top, width, height, flag, class,
    visibility)`` rows, 1-based boxes as in gt.txt."""
    values = np.asarray(rows, dtype=np.float64).reshape(-1, 9)
    return GroundTruth(frame=values[:, 0].astype(np.int64), id=values[:, 1].astype(np.int64),
                       boxes=values[:, 2:6].copy(), flag=values[:, 6].copy(),
                       cls=values[:, 7].astype(np.int64), visibility=values[:, 8].copy())


def prepared(frames, ids, boxes, visibility=None, width=100, height=100) -> MotcomGroundTruth:
    """Build already prepared (0-based, clipped) boxes, sorted by frame."""
    frames = np.asarray(frames, np.int64)
    order = np.argsort(frames, kind="stable")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    visibility = np.ones(len(frames)) if visibility is None else np.asarray(visibility, float)
    return MotcomGroundTruth(name="toy", frame=frames[order],
                             id=np.asarray(ids, np.int64)[order], boxes=boxes[order],
                             visibility=visibility[order], image_width=width,
                             image_height=height, seq_length=int(frames.max()))


def reference_box_ocom(gt: MotcomGroundTruth, *, y_rule: bool, self_cover: bool) -> float:
    """Box-mode OCOM the way the reference code computes it: an image-sized mask per box."""
    per_track: dict[int, list[float]] = {}
    for frame in np.unique(gt.frame):
        rows = np.flatnonzero(gt.frame == frame)
        if rows.size < 2:
            continue
        for i in rows:
            mask = np.zeros((gt.image_height, gt.image_width), bool)
            top, left = int(gt.boxes[i, 1]), int(gt.boxes[i, 0])
            height, width = int(gt.boxes[i, 3]), int(gt.boxes[i, 2])
            for j in rows:
                if j == i and not self_cover:
                    continue
                x2, y2, w2, h2 = gt.boxes[j]
                max_top, min_bottom = int(max(top, y2)), int(min(top + height, y2 + h2))
                max_left, min_right = int(max(left, x2)), int(min(left + width, x2 + w2))
                if y_rule and top + height == min_bottom:
                    continue
                if min_bottom - max_top + 1 <= 0 or min_right - max_left + 1 <= 0:
                    continue
                mask[max_top:min_bottom + 1, max_left:min_right + 1] = True
            covered = mask[top:top + height + 1, left:left + width + 1].sum()
            per_track.setdefault(int(gt.id[i]), []).append(
                covered / ((height + 1) * (width + 1)))
    means = [np.mean(values) for values in per_track.values()]
    return float(np.mean(means)) if means else 0.0


# --- real data: the reference implementation's numbers ------------------------------------------


@needs_realdata
def test_reference_csv_reproduced():
    with (MOT_ROOT / "motcom_reference.csv").open(encoding="utf-8") as handle:
        expected = {row["sequence"]: row for row in csv.DictReader(handle)}
    results = complexity_of_folder(MOT_ROOT / "MOT17", sequences=sorted(expected))
    assert sorted(results) == sorted(expected)
    for name, row in expected.items():
        assert results[name].ocom == pytest.approx(float(row["ocom"]), abs=1e-9), name
        assert results[name].mcom == pytest.approx(float(row["mcom"]), abs=1e-9), name


@needs_realdata
def test_real_box_and_track_counts():
    # Counts after the reference's preprocessing, as its dataset class reports them.
    results = complexity_of_folder(MOT_ROOT)
    counts = {name: (r.boxes, r.tracks) for name, r in results.items()}
    assert counts == {"MOT17-02-SDP": (18581, 62), "MOT17-05-SDP": (6917, 133),
                      "MOT17-09-SDP": (5325, 26), "MOT20-01": (19870, 74)}
    assert results["MOT20-01"].vcom is None
    assert results["MOT20-01"].motcom is None


@needs_realdata
def test_real_box_mode_equals_mask_loop():
    from motcom.io import read_ground_truth, read_seqinfo

    folder = MOT_ROOT / "MOT17" / "gt" / "MOT17-train" / "MOT17-09-SDP"
    info = read_seqinfo(folder / "seqinfo.ini")
    gt = motcom_ground_truth(read_ground_truth(folder / "gt" / "gt.txt"), info)
    # Every 10th frame keeps the mask loop fast; the covered fractions are per frame anyway.
    keep = gt.frame % 10 == 0
    subset = MotcomGroundTruth(gt.name, gt.frame[keep], gt.id[keep], gt.boxes[keep],
                               gt.visibility[keep], gt.image_width, gt.image_height,
                               gt.seq_length)
    for y_rule in (True, False):
        expected = reference_box_ocom(subset, y_rule=y_rule, self_cover=False)
        assert ocom(subset, mode="boxes", y_rule=y_rule) == pytest.approx(expected, abs=1e-12)


# --- ground-truth preparation ------------------------------------------------------------------


INFO = SequenceInfo(name="toy", seq_length=5, im_width=100, im_height=50)


def test_prepare_filters_class_and_flag():
    gt = ground_truth([
        (1, 1, 11, 21, 10, 5, 1, 1, 0.5),  # kept
        (1, 2, 11, 21, 10, 5, 1, 2, 1.0),  # class 2 (person on vehicle)
        (1, 3, 11, 21, 10, 5, 0, 1, 1.0),  # flag 0
        (1, 4, 11, 21, 10, 5, 0.5, 1, 1.0),  # flag truncates to 0
        (1, 5, 11, 21, 0, 5, 1, 1, 1.0),  # zero width
        (1, 6, 11, 21, 10, 0, 1, 1, 1.0),  # zero height
    ])
    result = motcom_ground_truth(gt, INFO)
    assert result.id.tolist() == [1]
    assert result.visibility.tolist() == [0.5]


def test_prepare_zero_based_boxes():
    result = motcom_ground_truth(ground_truth([(1, 1, 11, 21, 10, 5, 1, 1, 1)]), INFO)
    assert result.boxes.tolist() == [[10.0, 20.0, 10.0, 5.0]]


@pytest.mark.parametrize(("box", "clipped"), [
    ((-4, 11, 10, 5), (0, 10, 5, 5)),  # left edge outside: 0-based left -5, width 10 - 5
    ((11, -2, 10, 8), (10, 0, 10, 5)),  # top edge outside
    ((96, 11, 10, 5), (95, 10, 4, 5)),  # right edge outside: width = 100 - 95 - 1
    ((91, 11, 10, 5), (90, 10, 9, 5)),  # right edge exactly on the border is clipped too
    ((11, 46, 10, 10), (10, 45, 10, 4)),  # bottom edge outside
    ((-9, -9, 200, 100), (0, 0, 99, 49)),  # larger than the image
])
def test_prepare_clips_to_image(box, clipped):
    result = motcom_ground_truth(ground_truth([(1, 1, *box, 1, 1, 1)]), INFO)
    assert result.boxes.tolist() == [list(map(float, clipped))]


@pytest.mark.parametrize("box", [
    (-20, 11, 5, 5),  # fully left of the image
    (11, -20, 5, 5),  # fully above
    (101, 11, 5, 5),  # 0-based left 100 = image width
    (11, 51, 5, 5),  # 0-based top 50 = image height
    (-4, 11, 5, 5),  # 0-based left -5, width 5: clipped to width 0
])
def test_prepare_drops_boxes_outside(box):
    result = motcom_ground_truth(ground_truth([(1, 1, *box, 1, 1, 1)]), INFO)
    assert len(result) == 0


def test_prepare_sorts_by_frame():
    gt = ground_truth([(3, 1, 1, 1, 5, 5, 1, 1, 1), (1, 1, 1, 1, 5, 5, 1, 1, 1),
                       (1, 2, 11, 1, 5, 5, 1, 1, 1), (2, 2, 11, 1, 5, 5, 1, 1, 1)])
    result = motcom_ground_truth(gt, INFO)
    assert result.frame.tolist() == [1, 1, 2, 3]
    assert result.id.tolist() == [1, 2, 2, 1]


def test_prepare_needs_image_size():
    info = SequenceInfo(name="toy", seq_length=5, im_width=100)
    with pytest.raises(DataFormatError, match="imHeight") as error:
        motcom_ground_truth(ground_truth([(1, 1, 1, 1, 5, 5, 1, 1, 1)]), info,
                            source="toy/seqinfo.ini")
    assert "toy/seqinfo.ini" in str(error.value)


# --- OCOM ----------------------------------------------------------------------------------------


def test_ocom_visibility_mean_of_tracks():
    # Track 1: 1 - mean(1.0, 0.5) = 0.25; track 2: 1 - 0 = 1; OCOM = (0.25 + 1) / 2.
    gt = prepared([1, 2, 1], [1, 1, 2], [[0, 0, 5, 5]] * 3, visibility=[1.0, 0.5, 0.0])
    assert ocom(gt) == pytest.approx(0.625, abs=1e-15)


# A: rows 0-9, cols 0-9 (100 pixels). B: rows 0-19, cols 5-14 (200 pixels), bottom edge lower.
# Their intersection is rows 0-9, cols 5-9: 50 pixels.
TWO_BOXES = ([1, 1, 2], [1, 2, 1], [[0, 0, 9, 9], [5, 0, 9, 19], [0, 0, 9, 9]])


def test_ocom_boxes_without_y_rule():
    gt = prepared(*TWO_BOXES)
    # A: 50 / 100, B: 50 / 200; frame 2 has one box and does not count.
    assert ocom(gt, mode="boxes", y_rule=False) == pytest.approx((0.5 + 0.25) / 2, abs=1e-15)


def test_ocom_boxes_y_rule():
    gt = prepared(*TWO_BOXES)
    # As the reference code does it: A (bottom 9) does not count B (bottom 19) as covering it,
    # B counts A. A: 0, B: 0.25.
    assert ocom(gt, mode="boxes") == pytest.approx(0.125, abs=1e-15)
    assert reference_box_ocom(gt, y_rule=True, self_cover=True) == pytest.approx(0.125)


def test_ocom_boxes_self_cover_fixed():
    gt = prepared(*TWO_BOXES)
    assert reference_box_ocom(gt, y_rule=False, self_cover=True) == 1.0
    assert ocom(gt, mode="boxes", y_rule=False) == pytest.approx(0.375, abs=1e-15)


def test_ocom_boxes_union_not_sum():
    # Target T: cols 0-9. Partners cover cols 0-4 and 2-6 of it: union 7 of 10 columns.
    gt = prepared([1, 1, 1], [1, 2, 3], [[0, 0, 9, 9], [0, 0, 4, 9], [2, 0, 4, 9]])
    fractions = {1: 0.7, 2: 1.0, 3: 1.0}  # partners 2 and 3 lie inside T
    expected = np.mean(list(fractions.values()))
    assert ocom(gt, mode="boxes", y_rule=False) == pytest.approx(expected, abs=1e-15)


def test_ocom_boxes_random_equals_mask_loop():
    rng = np.random.default_rng(7)
    n = 120
    frames = rng.integers(1, 9, n)
    ids = np.arange(n) % 17
    # One row per (frame, id), as the readers guarantee.
    _, unique = np.unique(np.stack([frames, ids], 1), axis=0, return_index=True)
    left = rng.uniform(0, 60, n)
    top = rng.uniform(0, 40, n)
    width = rng.uniform(1, 79 - left)
    height = rng.uniform(1, 59 - top)
    boxes = np.stack([left, top, width, height], 1)[unique]
    gt = prepared(frames[unique], ids[unique], boxes, width=80, height=60)
    for y_rule in (True, False):
        expected = reference_box_ocom(gt, y_rule=y_rule, self_cover=False)
        assert ocom(gt, mode="boxes", y_rule=y_rule) == pytest.approx(expected, abs=1e-12)


def test_ocom_no_boxes_is_zero():
    gt = prepared([1], [1], [[0, 0, 5, 5]])
    assert ocom(gt, mode="boxes") == 0.0


def test_ocom_unknown_mode():
    with pytest.raises(UnknownNameError, match="visibility, boxes|boxes, visibility"):
        ocom(prepared([1], [1], [[0, 0, 5, 5]]), mode="mask")


# --- MCOM ----------------------------------------------------------------------------------------


def moving_track(xs, sizes=None, frames=None) -> MotcomGroundTruth:
    sizes = [2.0] * len(xs) if sizes is None else sizes
    frames = list(range(1, len(xs) + 1)) if frames is None else frames
    return prepared(frames, [1] * len(xs), [[x, 0, s, s] for x, s in zip(xs, sizes, strict=True)])


def test_mcom_displacement_intended_order():
    # Centres 1, 2, 4, 7: displacements -1, -2, -3 against predictions 0, -1, -2 give errors
    # 0, 1, 1, 1 per box, each divided by sqrt(area 4) = 2.
    assert mcom_displacement(moving_track([0, 1, 3, 6]), order="intended") == 0.375


def test_mcom_displacement_reference_order():
    # The reference reads centres 2, 4, 7, 7 (from the second box, last repeated): errors
    # 0, 2, 1, 3, each / 2.
    assert mcom_displacement(moving_track([0, 1, 3, 6])) == 0.75


def test_mcom_reference_order_shifts_areas():
    # Two boxes: the reference uses the second box twice, so nothing moves.
    gt = moving_track([0, 4], sizes=[2, 4])
    assert mcom_displacement(gt) == 0.0
    # In place: centres (1, 1) and (6, 2), error sqrt(26) / sqrt(16), averaged with the 0 of box 1.
    assert mcom_displacement(gt, order="intended") == pytest.approx(np.sqrt(26) / 4 / 2)


def test_mcom_ignores_frame_gaps():
    with_gap = moving_track([0, 1, 3, 6], frames=[1, 2, 7, 9])
    assert mcom_displacement(with_gap, order="intended") == 0.375


def test_mcom_averages_over_alphas():
    x = 0.75
    expected = np.mean([x / (x + k / 100) for k in range(1, 101)])
    assert len(ALPHAS) == 100
    assert mcom(moving_track([0, 1, 3, 6])) == pytest.approx(expected, abs=1e-14)


def test_mcom_still_objects_zero():
    assert mcom(moving_track([5, 5, 5])) == 0.0


def test_mcom_without_boxes_nan():
    empty = MotcomGroundTruth("empty", np.zeros(0, np.int64), np.zeros(0, np.int64),
                              np.zeros((0, 4)), np.zeros(0), 10, 10, 1)
    assert np.isnan(mcom(empty))


def test_mcom_unknown_order():
    with pytest.raises(UnknownNameError, match="intended"):
        mcom(moving_track([0, 1]), order="sorted")


def test_complexity_motcom_mean():
    gt = moving_track([0, 1, 3, 6])
    without = compute_complexity(gt)
    assert without.motcom is None
    with_vcom = compute_complexity(gt, vcom=0.3)
    assert with_vcom.motcom == pytest.approx((with_vcom.ocom + with_vcom.mcom + 0.3) / 3)
    assert with_vcom.settings == {"occlusion": "visibility", "y_rule": None,
                                  "mcom_order": "reference"}


# --- python -m harness run mot17|mot20 motcom ------------------------------------------------


def prepare_sample(root: Path, dataset: str, *, images: bool, **sample) -> tuple[Path, Path]:
    """Write a sample source under ``root``, prepare it and return (source, data home)."""
    source = write_mot_sample(root / "source", benchmark=dataset.upper(), images=images,
                              **sample)
    home = root / "home"
    assert main(["-q", "prepare", dataset, "--source", str(source), "--data-dir", str(home)]) == 0
    return source, home


def run_motcom(dataset: str, home: Path, output: Path, *options: str,
               quiet: bool = True) -> int:
    """Run the baseline through the CLI; ``quiet=False`` prints warnings to stderr."""
    return main([*(["-q"] if quiet else []), "run", dataset, "motcom", "--data-dir", str(home),
                 "--output", str(output), *options])


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def mot17_home(tmp_path_factory) -> tuple[Path, Path]:
    return prepare_sample(tmp_path_factory.mktemp("motcom17"), "mot17", images=True,
                          sequences=2, frames=12, pedestrians=5)


@pytest.fixture(scope="module")
def no_vcom_run(mot17_home, tmp_path_factory) -> Path:
    registry.register_baseline("mot17", "motcom", MOT17MotcomBaseline)
    output = tmp_path_factory.mktemp("motcom-run") / "run"
    assert run_motcom("mot17", mot17_home[1], output, "--no-vcom") == 0
    return output


def test_run_csv_columns(no_vcom_run):
    with (no_vcom_run / "motcom.csv").open(encoding="utf-8") as handle:
        assert handle.readline().strip() == ",".join(CSV_COLUMNS)
    rows = read_csv(no_vcom_run / "motcom.csv")
    assert [row["sequence"] for row in rows] == ["MOT17-02", "MOT17-04"]
    for row in rows:
        assert row["vcom"] == ""
        assert row["motcom"] == ""


def test_run_equals_folder(no_vcom_run, mot17_home):
    # The prepared copy and the source folder (SDP copies) give the same numbers.
    folder = complexity_of_folder(mot17_home[0])
    assert sorted(folder) == ["MOT17-02-SDP", "MOT17-04-SDP"]
    for row in read_csv(no_vcom_run / "motcom.csv"):
        expected = folder[f"{row['sequence']}-SDP"]
        assert float(row["ocom"]) == expected.ocom
        assert float(row["mcom"]) == expected.mcom
        assert 0.0 < expected.ocom < 1.0
        assert 0.0 < expected.mcom < 1.0


def test_run_record(no_vcom_run):
    record = json.loads((no_vcom_run / "record.json").read_text(encoding="utf-8"))
    rows = read_csv(no_vcom_run / "motcom.csv")
    assert record["dataset"] == "mot17"
    assert record["method"] == "motcom"
    assert record["data_kind"] == "sample"
    assert sorted(record["metrics"]) == ["mcom", "ocom"]
    assert record["metrics"]["ocom"] == pytest.approx(np.mean([float(r["ocom"]) for r in rows]))
    assert record["per_item"]["MOT17-02"]["ocom"] == float(rows[0]["ocom"])
    assert record["config"]["occlusion"] == "visibility"
    assert record["config"]["mcom_order"] == "reference"
    assert record["config"]["vcom"] is False


def test_run_plot_written(no_vcom_run):
    assert (no_vcom_run / "motcom.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(no_vcom_run.glob(".*.tmp"))


def test_run_options_change_values(mot17_home, tmp_path, no_vcom_run):
    output = tmp_path / "run"
    assert run_motcom("mot17", mot17_home[1], output, "--no-vcom", "--bbox-occlusion",
                      "--no-y-rule", "--mcom-order", "intended", "--sequences",
                      "MOT17-04-SDP") == 0
    rows = read_csv(output / "motcom.csv")
    assert [row["sequence"] for row in rows] == ["MOT17-04"]
    folder = complexity_of_folder(mot17_home[0], sequences=["MOT17-04-SDP"],
                                  occlusion="boxes", y_rule=False, mcom_order="intended")
    assert float(rows[0]["ocom"]) == folder["MOT17-04-SDP"].ocom
    assert float(rows[0]["mcom"]) == folder["MOT17-04-SDP"].mcom
    default = read_csv(no_vcom_run / "motcom.csv")[1]
    assert rows[0]["ocom"] != default["ocom"]
    assert rows[0]["mcom"] != default["mcom"]


def test_run_without_frames_warns(tmp_path, capsys):
    _, home = prepare_sample(tmp_path, "mot17", images=False, sequences=1, frames=6,
                             pedestrians=3)
    capsys.readouterr()
    assert run_motcom("mot17", home, tmp_path / "run", quiet=False) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines()
                if line.startswith("WARNING")]
    assert len(warnings) == 1
    assert "no frames table" in warnings[0]
    rows = read_csv(tmp_path / "run" / "motcom.csv")
    assert rows[0]["ocom"] != ""
    assert rows[0]["vcom"] == ""
    assert rows[0]["motcom"] == ""


def test_run_without_weights_warns(mot17_home, tmp_path, capsys, monkeypatch):
    pytest.importorskip("motcom.vcom")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    assert run_motcom("mot17", mot17_home[1], tmp_path / "run", quiet=False) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines()
                if line.startswith("WARNING")]
    assert len(warnings) == 1
    assert "resnet18-f37072fd.pth" in warnings[0]
    assert str(tmp_path / "torch-home") in warnings[0]
    rows = read_csv(tmp_path / "run" / "motcom.csv")
    assert [row["vcom"] for row in rows] == ["", ""]
    assert not (tmp_path / "torch-home").exists()


def test_run_vcom_random_weights(tmp_path):
    vcom = pytest.importorskip("motcom.vcom")
    source, home = prepare_sample(tmp_path, "mot17", images=True, sequences=1, frames=3,
                                  pedestrians=2)
    cache = tmp_path / "cache"
    assert run_motcom("mot17", home, tmp_path / "run", "--weights", "random:0", "--device",
                      "cpu", "--cache-dir", str(cache)) == 0
    row = read_csv(tmp_path / "run" / "motcom.csv")[0]

    from motcom.io import read_ground_truth, read_seqinfo

    folder = source / "MOT17" / "train" / "MOT17-02-SDP"
    info = read_seqinfo(folder / "seqinfo.ini")
    gt = motcom_ground_truth(read_ground_truth(folder / "gt" / "gt.txt"), info)
    frames = {int(f): folder / "img1" / f"{int(f):06d}.jpg" for f in np.unique(gt.frame)}
    expected = vcom.compute_vcom(gt, frames, weights="random:0", device="cpu", progress=False)
    assert float(row["vcom"]) == pytest.approx(expected, abs=1e-12)
    mean = (float(row["ocom"]) + float(row["mcom"]) + float(row["vcom"])) / 3
    assert float(row["motcom"]) == pytest.approx(mean, abs=1e-15)
    assert list(cache.iterdir())


def test_run_mot20(tmp_path):
    source, home = prepare_sample(tmp_path, "mot20", images=False, sequences=2, frames=8,
                                  pedestrians=4)
    assert run_motcom("mot20", home, tmp_path / "run", "--no-vcom") == 0
    rows = read_csv(tmp_path / "run" / "motcom.csv")
    folder = complexity_of_folder(source)
    assert [row["sequence"] for row in rows] == sorted(folder)
    for row in rows:
        assert float(row["ocom"]) == folder[row["sequence"]].ocom
        assert float(row["mcom"]) == folder[row["sequence"]].mcom


@pytest.mark.parametrize(("options", "message"), [
    (["--no-y-rule"], "--no-y-rule applies to --bbox-occlusion"),
    (["--no-vcom", "--weights", "x.pth"], "--no-vcom"),
    (["--weights", "missing.pth"], "weights file not found: missing.pth"),
    (["--no-vcom", "--sequences", "MOT17-99"], "MOT17-99"),
])
def test_run_invalid_options(mot17_home, tmp_path, capsys, options, message):
    assert run_motcom("mot17", mot17_home[1], tmp_path / "run", *options) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_run_not_prepared(tmp_path, capsys):
    assert run_motcom("mot20", tmp_path / "empty-home", tmp_path / "run", "--no-vcom") == 2
    assert "prepare" in capsys.readouterr().err


# --- eval integration ----------------------------------------------------------------------------


def test_beside_tracker_scores(mot17_home, tmp_path):
    source, home = mot17_home
    tracker = source / "trackers" / "noisytracker"
    assert main(["-q", "eval", "mot17", "--tracker-dir", str(tracker), "--data-dir", str(home),
                 "--output", str(tmp_path / "eval")]) == 0
    record = json.loads((tmp_path / "eval" / "record.json").read_text(encoding="utf-8"))
    complexity = complexity_of_prepared("mot17", data_dir=home)
    assert [c.sequence for c in complexity] == ["MOT17-02", "MOT17-04"]
    path = motcom_beside_scores(record["per_item"], {c.sequence: c for c in complexity},
                                tmp_path / "scatter.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_beside_scores_no_common_sequence(tmp_path):
    complexity = {"MOT17-02": compute_complexity(moving_track([0, 1, 3]))}
    with pytest.raises(FieldHarnessError, match="no scored sequence"):
        motcom_beside_scores({"MOT17-05-SDP": {"HOTA": 50.0, "MOTA": 40.0}}, complexity,
                             tmp_path / "scatter.png")
    assert not (tmp_path / "scatter.png").exists()


def test_beside_scores_missing_metric(tmp_path):
    complexity = {"MOT17-02": compute_complexity(moving_track([0, 1, 3]))}
    with pytest.raises(FieldHarnessError, match="'MOTA' is missing"):
        motcom_beside_scores({"MOT17-02-SDP": {"HOTA": 50.0}}, complexity,
                             tmp_path / "scatter.png")


def test_eval_motcom_option_writes_scatter(mot17_home, tmp_path):
    source, home = mot17_home
    tracker = source / "trackers" / "noisytracker"
    assert main(["-q", "eval", "mot17", "--tracker-dir", str(tracker), "--data-dir", str(home),
                 "--output", str(tmp_path / "eval"), "--motcom"]) == 0
    record = json.loads((tmp_path / "eval" / "record.json").read_text(encoding="utf-8"))
    scatter = tmp_path / "eval" / "motcom_vs_scores.png"
    assert scatter.read_bytes()[:4] == b"\x89PNG"
    assert "motcom_vs_scores.png" in record["files"]


def test_eval_motchallenge_motcom_option(mot17_home, tmp_path):
    source, _ = mot17_home
    gt_dir = source / "MOT17" / "train"
    tracker = source / "trackers" / "noisytracker"
    assert main(["-q", "eval", "motchallenge", "--gt-dir", str(gt_dir), "--tracker-dir",
                 str(tracker), "--benchmark", "MOT17", "--output", str(tmp_path / "eval"),
                 "--motcom"]) == 0
    assert (tmp_path / "eval" / "motcom_vs_scores.png").read_bytes()[:4] == b"\x89PNG"
