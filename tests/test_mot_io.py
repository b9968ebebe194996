"""Tests of the MOTChallenge readers in ``motcom.io``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from harness.errors import DataFormatError
from motcom.io import (
    read_detections,
    read_ground_truth,
    read_seqinfo,
    read_tracks,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_MOT = SHARED / "realdata" / "mot"

needs_realdata = pytest.mark.skipif(
    not REAL_MOT.is_dir(), reason="real MOTChallenge files not found at ../shared/realdata/mot"
)

GT_LINES = [
    "1,1,10,20,30,40,1,1,0.5",
    "2,1,11,21,30,40,1,1,0.75",
    "1,2,50,60,10,20,0,7,1",
]


def write(tmp_path: Path, text: str | bytes, name: str = "gt.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# --------------------------------------------------------------------------------------------
# Ground truth


def test_gt_nine_columns(tmp_path):
    gt = read_ground_truth(write(tmp_path, "\n".join(GT_LINES) + "\n"))
    assert len(gt) == 3
    assert gt.frame.tolist() == [1, 2, 1]
    assert gt.id.tolist() == [1, 1, 2]
    assert gt.boxes[1].tolist() == [11, 21, 30, 40]
    assert gt.flag.tolist() == [1, 1, 0]
    assert gt.cls.tolist() == [1, 1, 7]
    assert gt.visibility.tolist() == [0.5, 0.75, 1.0]
    assert gt.frame.dtype == np.int64
    assert gt.boxes.dtype == np.float64


@pytest.mark.parametrize(
    "variant",
    ["crlf", "bom", "no_final_newline", "blank_lines", "whitespace", "tabs", "trailing_comma",
     "spaces_after_commas", "whitespace_only_line", "float_frames"],
)
def test_gt_file_variants(tmp_path, variant):
    lines = list(GT_LINES)
    sep, end, prefix = "\n", "\n", b""
    if variant == "crlf":
        sep = end = "\r\n"
    elif variant == "bom":
        prefix = b"\xef\xbb\xbf"
    elif variant == "no_final_newline":
        end = ""
    elif variant == "blank_lines":
        lines = ["", lines[0], "", "", lines[1], lines[2], ""]
    elif variant == "whitespace":
        lines = ["  " + line.replace(",", "   ") for line in lines]
    elif variant == "tabs":
        lines = [line.replace(",", "\t") for line in lines]
    elif variant == "trailing_comma":
        lines = [line + "," for line in lines]
    elif variant == "spaces_after_commas":
        lines = [line.replace(",", ", ") for line in lines]
    elif variant == "whitespace_only_line":
        lines = [lines[0], "   ", lines[1], lines[2]]
    elif variant == "float_frames":
        lines = [line.replace("1,1,10", "1.0,1.000,10") for line in lines]
    path = write(tmp_path, prefix + (sep.join(lines) + end).encode())

    gt = read_ground_truth(path)

    assert gt.frame.tolist() == [1, 2, 1]
    assert gt.id.tolist() == [1, 1, 2]
    assert gt.cls.tolist() == [1, 1, 7]
    assert gt.visibility.tolist() == [0.5, 0.75, 1.0]


def test_gt_empty_file(tmp_path):
    for text in ["", "\n\n", "\r\n  \r\n"]:
        gt = read_ground_truth(write(tmp_path, text))
        assert len(gt) == 0
        assert gt.boxes.shape == (0, 4)


def test_gt_mot15_columns(tmp_path):
    path = write(tmp_path, "1,1,10,20,30,40,1,-1,-1,-1\n2,1,10,20,30,40,1,-1,-1,-1\n")
    gt = read_ground_truth(path)
    assert gt.cls.tolist() == [1, 1]
    assert gt.visibility.tolist() == [1.0, 1.0]
    assert gt.flag.tolist() == [1.0, 1.0]


def test_gt_eight_and_twelve_columns(tmp_path):
    gt = read_ground_truth(write(tmp_path, "1,1,10,20,30,40,1,2\n"))
    assert gt.cls.tolist() == [2]
    assert gt.visibility.tolist() == [1.0]
    gt = read_ground_truth(write(tmp_path, "1,1,10,20,30,40,1,1,0.25,3.5,nan,-1\n"))
    assert gt.cls.tolist() == [1]
    assert gt.visibility.tolist() == [0.25]


GT_ERRORS = [
    # (file text, line, message pattern)
    ("1,1,10,20,30,40,1,1,1\n1,2,10,20,30\n", 2, r"line has 5 fields but line 1 has 9"),
    ("1,1,10,20,30,40,1\n", 1, r"ground truth line has 7 fields.*expected at least 8"),
    ("1,1,10,20,30,40,1,1,1\n2,1,10,x,30,40,1,1,1\n", 2,
     r"not a number \(field 'top', value 'x'\)"),
    ("1,1,10,20,30,40,1,1,1\n2,1,10,,30,40,1,1,1\n", 2, r"missing value \(field 'top'\)"),
    ("1,1,10,20,30,40,1,1,1\n2,1,10,20,nan,40,1,1,1\n", 2,
     r"not a finite number \(field 'width', value 'nan'\)"),
    ("1,1,10,20,30,40,1,1,1\n2,1,10,20,30,inf,1,1,1\n", 2,
     r"not a finite number \(field 'height', value 'inf'\)"),
    ("1,1,10,20,30,40,1,1,1\n2,1,10,20,30,40,1,1,NaN\n", 2,
     r"not a finite number \(field 'visibility', value 'NaN'\)"),
    ("1,1,10,20,30,40,1,1,1\n0,2,10,20,30,40,1,1,1\n", 2,
     r"frame is below 1 \(frames are 1-based\) \(field 'frame', value '0'\); expected an integer"),
    ("1,1,10,20,30,40,1,1,1\n-3,2,10,20,30,40,1,1,1\n", 2, r"frame is below 1.*value '-3'"),
    ("1.5,1,10,20,30,40,1,1,1\n", 1, r"frame is not an integer \(field 'frame', value '1.5'\)"),
    ("1,1,10,20,30,40,1,1,1\n1,-1,10,20,30,40,1,1,1\n", 2,
     r"negative id \(field 'id', value '-1'\); expected an integer >= 0"),
    ("1,2.5,10,20,30,40,1,1,1\n", 1, r"id is not an integer"),
    ("1,1,10,20,-30,40,1,1,1\n", 1, r"negative width \(field 'width', value '-30'\)"),
    ("1,1,10,20,30,-4,1,1,1\n", 1, r"negative height \(field 'height', value '-4'\)"),
    ("1,1,10,20,30,40,1,1.5,1\n", 1, r"class is not an integer \(field 'class'"),
    ("1,1,10,20,30,40,1,1,1\n2,1,10,20,30,40,1,1,1\n1,1,5,5,5,5,1,1,1\n", 3,
     r"id used twice in the same frame \(first used on line 1\) \(field 'id', value '1'\)"),
]


@pytest.mark.parametrize(("text", "line", "pattern"), GT_ERRORS)
def test_gt_errors(tmp_path, text, line, pattern):
    path = write(tmp_path, text)
    with pytest.raises(DataFormatError, match=re.escape(f"{path}:{line}: ") + pattern) as info:
        read_ground_truth(path)
    assert info.value.line == line
    assert info.value.path == str(path)


def test_gt_frame_past_seq_length(tmp_path):
    path = write(tmp_path, "1,1,10,20,30,40,1,1,1\n\n5,1,10,20,30,40,1,1,1\n")
    assert len(read_ground_truth(path, seq_length=5)) == 2
    with pytest.raises(
        DataFormatError,
        match=r"gt\.txt:3: frame is past the end of the sequence \(4 frames\) "
        r"\(field 'frame', value '5'\); expected an integer from 1 to 4 \(seqLength\)",
    ):
        read_ground_truth(path, seq_length=4)


def test_gt_error_reports_earliest_line(tmp_path):
    lines = [f"{f},1,10,20,30,40,1,1,1" for f in range(1, 50)]
    lines[40] = "41,1,10,20,-1,40,1,1,1"
    lines[10] = "0,1,10,20,30,40,1,1,1"
    path = write(tmp_path, "\n".join(lines))
    with pytest.raises(DataFormatError, match=r"gt\.txt:11: frame is below 1"):
        read_ground_truth(path)


def test_gt_duplicate_after_many_lines(tmp_path):
    lines = [f"{f},{i},1,2,3,4,1,1,1" for i in range(1, 30) for f in range(1, 30)]
    lines.append("7,3,1,2,3,4,1,1,1")
    path = write(tmp_path, "\r\n".join(lines) + "\r\n")
    first = lines.index("7,3,1,2,3,4,1,1,1") + 1
    with pytest.raises(
        DataFormatError, match=rf"gt\.txt:{len(lines)}: id used twice .*first used on line {first}"
    ):
        read_ground_truth(path)


# --------------------------------------------------------------------------------------------
# Tracker files and detections


def test_tracks_ten_seven_six_columns(tmp_path):
    tracks = read_tracks(write(tmp_path, "1,5,1,2,3,4,0.9,-1,-1,-1\n2,5,1,2,3,4,0.8,1,-1,-1\n"))
    assert tracks.id.tolist() == [5, 5]
    assert tracks.conf.tolist() == [0.9, 0.8]
    tracks = read_tracks(write(tmp_path, "1 5 1 2 3 4 0.7\n"))
    assert tracks.conf.tolist() == [0.7]
    tracks = read_tracks(write(tmp_path, "1,5,1,2,3,4\n3,5,1,2,3,4"))
    assert tracks.frame.tolist() == [1, 3]
    assert tracks.conf.tolist() == [1.0, 1.0]


TRACKER_ERRORS = [
    ("1,5,1,2,3\n", 1, r"tracker line has 5 fields.*expected at least 6 \(frame, id, left, top, "
                       r"width, height\)"),
    ("1,5,1,2,3,4,1,2,-1,-1\n", 1,
     r"column 8 is read as a class .*rejects a value of 2 or more .*\(field 'x', value '2'\); "
     r"expected a value below 2"),
    ("1,5,1,2,3,4,1,2.5,-1,-1\n", 1, r"column 8 .*rejects a value of 2 or more .*value '2\.5'"),
    ("1,5,1,2,3,4,1,-1,-1,-1\n1,5,1,2,3,4,1,-1,-1,-1\n", 2, r"id used twice in the same frame"),
    ("1,-1,1,2,3,4,1,-1,-1,-1\n", 1, r"negative id"),
    ("1,5,1,2,3,4,abc,-1,-1,-1\n", 1, r"not a number \(field 'conf', value 'abc'\)"),
    ("1,5,1,2,3,4,nan,-1,-1,-1\n", 1, r"not a finite number \(field 'conf'"),
]


@pytest.mark.parametrize(("text", "line", "pattern"), TRACKER_ERRORS)
def test_tracks_errors(tmp_path, text, line, pattern):
    path = write(tmp_path, text, "MOT17-02-SDP.txt")
    with pytest.raises(DataFormatError, match=re.escape(f"{path}:{line}: ") + pattern):
        read_tracks(path)


def test_tracks_class_one_and_extra_columns_accepted(tmp_path):
    tracks = read_tracks(write(tmp_path, "1,5,1,2,3,4,1,1.9,nan,-1\n", "a.txt"))
    assert len(tracks) == 1


def test_tracks_column_8_below_two_accepted(tmp_path):
    # TrackEval 1.3.0 truncates the value to an integer and rejects only results above 1.
    lines = [f"{frame},5,1,2,3,4,1,{value},-1,-1"
             for frame, value in enumerate(["0", "0.7", "1.5", "-3", "-1", "1"], start=1)]
    tracks = read_tracks(write(tmp_path, "\n".join(lines) + "\n", "a.txt"))
    assert len(tracks) == 6


HEADER_HINT = (r"\. Line 1 has no number, so it looks like a header line, but MOTChallenge files "
               r"have no header line: remove it$")


def test_tracks_header_line(tmp_path):
    path = write(tmp_path, "frame,id,left,top,width,height,conf,x,y,z\n"
                           "1,5,1,2,3,4,1,-1,-1,-1\n", "a.txt")
    with pytest.raises(DataFormatError,
                       match=r"a\.txt:1: not a number \(field 'frame', value 'frame'\); "
                             r"expected a number" + HEADER_HINT):
        read_tracks(path)


def test_tracks_pandas_header_line(tmp_path):
    path = write(tmp_path, ",frame,id,left,top,width,height,conf,x,y,z\n"
                           "1,5,1,2,3,4,1,-1,-1,-1\n", "a.txt")
    with pytest.raises(DataFormatError,
                       match=r"a\.txt:2: line has 10 fields but line 1 has 11 .*; expected 11 "
                             r"fields on every line" + HEADER_HINT):
        read_tracks(path)


def test_gt_header_line_after_blank_line(tmp_path):
    path = write(tmp_path, "\nframe id left top width height flag class visibility\n"
                           "1 1 10 20 30 40 1 1 1\n")
    with pytest.raises(DataFormatError, match=r"gt\.txt:2: not a number .*Line 2 has no number, "
                                              r"so it looks like a header line"):
        read_ground_truth(path)


def test_tracks_bad_first_line_no_hint(tmp_path):
    path = write(tmp_path, "1,5,x,2,3,4,1,-1,-1,-1\n", "a.txt")
    with pytest.raises(DataFormatError, match=r"not a number \(field 'left', value 'x'\); "
                                              r"expected a number$"):
        read_tracks(path)


def test_tracks_whitespace_line_in_comma_file(tmp_path):
    path = write(tmp_path, "1,5,1,2,3,4,1,-1,-1,-1\n2 5 1 2 3 4 1 -1 -1 -1\n", "a.txt")
    with pytest.raises(DataFormatError,
                       match=r"a\.txt:2: line has 1 fields but line 1 has 10: its values are "
                             r"separated by whitespace, but line 1's by commas \(value '2 5 1 "
                             r"2 3 4 1 -1 -1 -1'\); expected the separator of line 1 \(commas\) "
                             r"on every line"):
        read_tracks(path)


def test_tracks_frame_past_seq_length(tmp_path):
    path = write(tmp_path, "1,5,1,2,3,4,1\n11,5,1,2,3,4,1\n", "a.txt")
    with pytest.raises(DataFormatError, match=r"a\.txt:2: frame is past the end.*from 1 to 10"):
        read_tracks(path, seq_length=10)


def test_detections(tmp_path):
    path = write(tmp_path, "1,-1,1,2,3,4,57.5,-1,-1,-1\n1,-1,5,6,7,8,3.2,-1,-1,-1\n", "det.txt")
    dets = read_detections(path)
    assert dets.id.tolist() == [-1, -1]
    assert dets.conf.tolist() == [57.5, 3.2]
    with pytest.raises(DataFormatError, match=r"det\.txt:1: detections line has 6 fields"):
        read_detections(write(tmp_path, "1,-1,1,2,3,4\n", "det.txt"))


# --------------------------------------------------------------------------------------------
# seqinfo.ini


def test_seqinfo_fields(tmp_path):
    path = write(
        tmp_path,
        "[Sequence]\r\nname=MOT17-05-SDP\r\nimDir=img1\r\nframeRate=14\r\nseqLength=837\r\n"
        "imWidth=640\r\nimHeight=480\r\nimExt=.jpg\r\n",
        "seqinfo.ini",
    )
    info = read_seqinfo(path)
    assert info.name == "MOT17-05-SDP"
    assert info.seq_length == 837
    assert info.frame_rate == 14.0
    assert (info.im_width, info.im_height) == (640, 480)
    assert info.im_ext == ".jpg"


def test_seqinfo_minimal_uses_folder_name(tmp_path):
    folder = tmp_path / "SEQ-1"
    folder.mkdir()
    info = read_seqinfo(write(folder, "[Sequence]\nseqlength = 12\n", "seqinfo.ini"))
    assert info.name == "SEQ-1"
    assert info.seq_length == 12
    assert info.im_width is None


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("[Other]\nseqLength=3\n", r"seqinfo\.ini: no \[Sequence\] section"),
        ("[Sequence]\nname=a\n", r"seqinfo\.ini: missing key 'seqLength' in \[Sequence\]"),
        ("[Sequence]\nname=a\nseqLength=ten\n",
         r"seqinfo\.ini:3: invalid value of 'seqLength' \(field 'seqLength', value 'ten'\); "
         r"expected an integer >= 1"),
        ("[Sequence]\nseqLength=0\n", r"seqinfo\.ini:2: invalid value of 'seqLength'"),
        ("[Sequence]\nseqLength=5\nimWidth=-2\n", r"seqinfo\.ini:3: invalid value of 'imWidth'"),
        ("seqLength=5\n", r"seqinfo\.ini: not a valid INI file"),
    ],
)
def test_seqinfo_errors(tmp_path, text, pattern):
    with pytest.raises(DataFormatError, match=pattern):
        read_seqinfo(write(tmp_path, text, "seqinfo.ini"))


# --------------------------------------------------------------------------------------------
# Real files


@needs_realdata
def test_real_tud_gt_crlf_mot15():
    gt = read_ground_truth(REAL_MOT / "TUD" / "TUD-Campus" / "gt.txt", seq_length=71)
    assert len(gt) == 359
    assert gt.frame.max() == 71
    assert set(gt.cls.tolist()) == {1}
    tracks = read_tracks(REAL_MOT / "TUD" / "TUD-Campus" / "test.txt", seq_length=71)
    assert len(tracks) == 222


@needs_realdata
def test_real_file_without_final_newline():
    tracks = read_tracks(REAL_MOT / "TUD" / "iotest_motchallenge.txt")
    assert tracks.frame.tolist() == [1, 1, 2, 2, 2]
    assert tracks.id.tolist() == [1, 2, 2, 3, 4]
    assert tracks.boxes[-1].tolist() == [200, 206, 55, 137]


@needs_realdata
def test_real_mot17_gt_counts():
    root = REAL_MOT / "MOT17" / "gt" / "MOT17-train" / "MOT17-02-SDP"
    info = read_seqinfo(root / "seqinfo.ini")
    gt = read_ground_truth(root / "gt" / "gt.txt", seq_length=info.seq_length)
    assert info.seq_length == 600
    assert len(gt) == 30003
    assert int(((gt.cls == 1) & (gt.flag == 1)).sum()) == 18581


@needs_realdata
def test_real_mot20_gt_classes():
    gt = read_ground_truth(REAL_MOT / "MOT20" / "gt" / "MOT20-train" / "MOT20-01" / "gt" / "gt.txt")
    counts = {int(c): int((gt.cls == c).sum()) for c in np.unique(gt.cls)}
    assert counts == {1: 19870, 7: 2574, 11: 4203}


def test_reader_at_benchmark_size(tmp_path):
    """340,000 rows, as many as a MOT17 train set has, parse correctly."""
    rng = np.random.default_rng(0)
    n = 340_000
    frame = np.repeat(np.arange(1, 3401), 100)
    ids = np.tile(np.arange(1, 101), 3400)
    boxes = rng.uniform(0, 500, size=(n, 4))
    table = np.column_stack([frame, ids, boxes, np.ones(n), -np.ones((n, 3))])
    path = tmp_path / "big.txt"
    np.savetxt(path, table, fmt=["%d", "%d", "%.3f", "%.3f", "%.3f", "%.3f", "%d", "%d", "%d",
                                 "%d"], delimiter=",")
    tracks = read_tracks(path, seq_length=3400)
    assert len(tracks) == n
    assert tracks.frame[-1] == 3400
    assert np.allclose(tracks.boxes, np.round(boxes, 3))


# --------------------------------------------------------------------------------------------
# Property: any valid file round-trips, whatever its separators and line ends


def test_tracks_round_trip_property(tmp_path):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    row = st.tuples(
        st.integers(1, 50),
        st.integers(0, 10_000),
        *[st.floats(-1e4, 1e4, allow_nan=False) for _ in range(2)],
        *[st.floats(0, 1e4, allow_nan=False) for _ in range(2)],
        st.floats(-1, 1e3, allow_nan=False),
    )

    @hypothesis.settings(max_examples=60, deadline=None)
    @hypothesis.given(
        rows=st.lists(row, max_size=40, unique_by=lambda r: (r[0], r[1])),
        separator=st.sampled_from([",", ", ", " ", "\t", "  "]),
        newline=st.sampled_from(["\n", "\r\n"]),
        final_newline=st.booleans(),
        bom=st.booleans(),
    )
    def check(rows, separator, newline, final_newline, bom):
        lines = [separator.join([str(r[0]), str(r[1]), *map(repr, r[2:]), "-1", "-1", "-1"])
                 for r in rows]
        text = newline.join(lines) + (newline if final_newline and lines else "")
        path = tmp_path / "tracks.txt"
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())

        tracks = read_tracks(path)

        assert tracks.frame.tolist() == [r[0] for r in rows]
        assert tracks.id.tolist() == [r[1] for r in rows]
        assert tracks.boxes.tolist() == [list(r[2:6]) for r in rows]
        assert tracks.conf.tolist() == [r[6] for r in rows]

    check()
