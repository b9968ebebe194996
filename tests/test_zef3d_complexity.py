"""3D-ZeF complexity per view: occlusion measures worked out by hand, MOTCOM, prepared data."""

from __future__ import annotations

import argparse
import math

import numpy as np
import polars as pl
import pytest

from harness import registry
from harness.errors import DataFormatError
from harness.plugin import RunContext
from harness.prepare import prepare_dataset
from zef3d.complexity import (
    COMPLEXITY_COLUMNS,
    complexity_of_prepared,
    complexity_table,
    occlusion_measures,
    occlusion_runs,
    view_complexity,
    write_complexity,
)
from zef3d.plugin import Zef3DPlugin

FISH1_FLAGS = [0, 1, 1, 0, 0, 1, 0, 0, 1, 1]
FISH2_FLAGS = [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]


def two_fish() -> pl.DataFrame:
    """Ten frames of two fish in the top view; fish 2 slides over fish 1 in frames 2 and 3.

    Fish 1's box is (0, 0, 9, 9) px (inclusive corners). Fish 2's box starts at x = 5 in frame 2
    (the two share 5 x 10 of 10 x 10 pixels) and at x = 8 in frame 3 (2 x 10 pixels).
    """
    rows = []
    for t in range(1, 11):
        left2 = {2: 5.0, 3: 8.0}.get(t, 40.0)
        rows.append((t, 1, 0.0, 0.0, 9.0, 9.0, FISH1_FLAGS[t - 1]))
        rows.append((t, 2, left2, 0.0, 9.0, 9.0, FISH2_FLAGS[t - 1]))
    return pl.DataFrame(rows, schema=["frame", "id", "top_left", "top_top", "top_width",
                                      "top_height", "top_occlusion"], orient="row")


def measures() -> dict[str, float]:
    gt = two_fish()
    return occlusion_measures(gt["frame"].to_numpy(), gt["id"].to_numpy(),
                              gt["top_occlusion"].to_numpy(),
                              gt.select(["top_left", "top_top", "top_width",
                                         "top_height"]).to_numpy())


def test_runs_skip_run_at_last_row():
    frames = np.arange(1, 11)
    assert occlusion_runs(frames, np.array(FISH1_FLAGS)) == [(2, 3), (6, 6)]
    assert occlusion_runs(frames, np.array(FISH2_FLAGS)) == [(2, 3)]


def test_occlusion_count_and_length():
    # Runs (2, 3) and (6, 6) of fish 1 and (2, 3) of fish 2; lengths 2, 1, 2 pooled.
    values = measures()
    assert values["occlusion_count"] == 3
    assert values["mean_occlusion_length"] == pytest.approx(5 / 3, abs=1e-12)


def test_frames_between_occlusions():
    # Fish 1: 2 frames between its runs, 4 after (frames 7-10), 1 before: mean 7/3.
    # Fish 2: 7 after, 1 before: mean 4. The mean over fish is 19/6.
    assert measures()["mean_frames_between_occlusions"] == pytest.approx(19 / 6, abs=1e-12)


def test_box_overlap_during_occlusions():
    # Frame 2: each box is half covered; frame 3: 0.2. Frame 6 has one occluded fish only.
    assert measures()["occlusion_box_overlap"] == pytest.approx(0.35, abs=1e-12)


def test_overlap_uses_union_of_intersections():
    gt = pl.DataFrame(
        [(1, 1, 0.0, 0.0, 9.0, 9.0, 1), (1, 2, 5.0, 0.0, 9.0, 9.0, 1),
         (1, 3, 5.0, 0.0, 9.0, 9.0, 1), (2, 1, 0.0, 0.0, 9.0, 9.0, 0),
         (2, 2, 50.0, 0.0, 9.0, 9.0, 0), (2, 3, 70.0, 0.0, 9.0, 9.0, 0)],
        schema=["frame", "id", "l", "t", "w", "h", "o"], orient="row")
    values = occlusion_measures(gt["frame"].to_numpy(), gt["id"].to_numpy(),
                                gt["o"].to_numpy(), gt.select(["l", "t", "w", "h"]).to_numpy())
    # Fish 1 is half covered; fish 2 and 3 are covered by each other completely.
    assert values["occlusion_box_overlap"] == pytest.approx((0.5 + 1.0 + 1.0) / 3, abs=1e-12)


def test_no_occlusion_gives_nan_means():
    values = occlusion_measures(np.array([1, 2]), np.array([1, 1]), np.array([0, 0]),
                                np.zeros((2, 4)) + 5)
    assert values["occlusion_count"] == 0
    assert math.isnan(values["mean_occlusion_length"])
    assert math.isnan(values["occlusion_box_overlap"])


def test_view_complexity_motcom():
    # MOTCOM's box-mode OCOM counts a box as covered only by a box whose bottom edge differs.
    gt = two_fish().with_columns(
        pl.when(pl.col("id") == 2).then(2.0).otherwise(pl.col("top_top")).alias("top_top"))
    row = view_complexity(gt, "top", sequence="ZebraFish-01", image_width=100,
                          image_height=50, seq_length=10)
    assert row["occlusion_count"] == 3
    assert 0.0 < row["ocom"] <= 1.0
    assert 0.0 <= row["mcom"] <= 1.0
    assert row["motcom_ocom_mcom"] == pytest.approx((row["ocom"] + row["mcom"]) / 2)


def test_view_complexity_missing_column():
    with pytest.raises(DataFormatError, match="has no column 'front_left'"):
        view_complexity(two_fish(), "front", sequence="ZebraFish-01", image_width=100,
                        image_height=50, seq_length=10)


def test_table_and_csv(tmp_path):
    gt = two_fish()
    front = gt.rename({name: name.replace("top_", "front_") for name in gt.columns
                       if name.startswith("top_")})
    both = gt.join(front, on=["frame", "id"])
    table = complexity_table([("ZebraFish-01", both, {"top": (100, 50), "front": (100, 50)},
                               10)])
    assert table.columns == list(COMPLEXITY_COLUMNS)
    assert table["view"].to_list() == ["top", "front"]
    path = write_complexity(table, tmp_path / "complexity.csv")
    assert pl.read_csv(path)["occlusion_count"].to_list() == [3, 3]


@pytest.fixture()
def prepared(tmp_path):
    from zef3d.sample import write_zef_sample

    registry.register_dataset("zef3d", Zef3DPlugin)
    root = write_zef_sample(tmp_path / "sample", frames=30)
    prepare_dataset("zef3d", root, data_dir=tmp_path / "home", progress=False)
    return root / "3DZeF20" / "train", tmp_path / "home"


def test_complexity_of_prepared(prepared):
    _, home = prepared
    table = complexity_of_prepared(data_dir=home)
    assert table["sequence"].to_list() == ["ZebraFish-01", "ZebraFish-01", "ZebraFish-02",
                                           "ZebraFish-02"]
    assert table["frames"].to_list() == [30, 30, 30, 30]
    assert table["ocom"].is_not_nan().all()


def test_eval_writes_complexity(prepared, tmp_path):
    train, home = prepared
    tracks = tmp_path / "tracks"
    tracks.mkdir()
    for seq in train.iterdir():
        lines = (seq / "gt" / "gt.txt").read_text().splitlines()
        (tracks / f"{seq.name}.txt").write_text(
            "\n".join(",".join(line.split(",")[:5]) for line in lines) + "\n")
    evaluator = Zef3DPlugin().evaluator()
    parser = argparse.ArgumentParser()
    evaluator.add_arguments(parser)
    outcome = evaluator.evaluate(parser.parse_args(["--tracks", str(tracks), "--complexity"]),
                                 RunContext(output_dir=tmp_path / "run", data_dir=home))
    assert outcome.metrics["MOTA"] == 100.0
    written = pl.read_csv(tmp_path / "run" / "zef3d_complexity.csv")
    assert written.height == 4


@pytest.mark.slow
def test_complexity_vcom_of_the_views(prepared):
    from motcom.motcom_run import VcomOptions

    _, home = prepared
    without = complexity_of_prepared(["ZebraFish-01"], data_dir=home)
    assert without["vcom"].is_nan().all()
    assert without["motcom"].is_nan().all()

    # A seeded random ResNet-18: no weights file is needed, and VCOM is computed on the frames.
    table = complexity_of_prepared(["ZebraFish-01"], data_dir=home,
                                   vcom=VcomOptions(weights="random:0", progress=False))
    assert table["view"].to_list() == ["top", "front"]
    for row in table.iter_rows(named=True):
        assert 0.0 <= row["vcom"] <= 1.0
        assert row["motcom"] == pytest.approx((row["ocom"] + row["mcom"] + row["vcom"]) / 3)
    assert table["ocom"].to_list() == without["ocom"].to_list()
