"""The Bossu rain detector: its pieces, the official CSV and settings files, the real C++ output,
and the ``bossu`` baseline on the generated VIRADA sample."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest

from harness.errors import DataFormatError, FieldHarnessError
from virada.bossu import (
    HISTOGRAM_BINS,
    BossuDetector,
    BossuParameters,
    FrameResult,
    KalmanSmoother,
    blob_moments,
    candidate_mask,
    fit_mixture,
    goodness_of_fit,
    orientation_histogram,
    streak_geometry,
)
from virada.bossu_io import (
    CSV_COLUMNS,
    read_results_csv,
    read_settings,
    settings_text,
    write_results_csv,
    write_settings,
)
from virada.labels import VideoLabels

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BOSSU_OUTPUT = SHARED / "realdata" / "virada" / "bossu_output"
_skip_without_realdata = pytest.mark.skipif(
    not BOSSU_OUTPUT.is_dir(), reason=f"real Bossu output not found at {BOSSU_OUTPUT}"
)


def needs_realdata(test):
    """Mark ``test`` as a real-data test that is skipped when the files are absent."""
    return pytest.mark.realdata(_skip_without_realdata(test))


OFFICIAL_HEADER = (
    "settingsFile;InputVideo; Frame#; GaussMean;GaussStdDev;GaussMixProp;Goodness-Of-Fit Value;"
    "kalmanGaussMean;kalmanGaussStdDev;kalmanGaussMixProp;Rain Intensity;Kalman Rain Intensity;"
    "EM Rain Detected;Kalman Rain Detected"
)


def _line_mask(angle_degrees: float, length: int = 15, size: int = 64) -> np.ndarray:
    """Draw a 1-pixel line through the centre, at ``angle_degrees`` counter-clockwise from the
    x axis with y pointing up."""
    import cv2

    mask = np.zeros((size, size), np.uint8)
    angle = math.radians(angle_degrees)
    centre = size // 2
    start = (round(centre - length * math.cos(angle)), round(centre + length * math.sin(angle)))
    end = (round(centre + length * math.cos(angle)), round(centre - length * math.sin(angle)))
    cv2.line(mask, start, end, 1, 1, cv2.LINE_8)
    return mask.astype(bool)


# --- blobs and orientation -------------------------------------------------------------------


def test_orientation_axis_aligned_lines():
    for angle, expected in ((90, math.pi / 2), (0, math.pi)):
        areas, mu20, mu02, mu11 = blob_moments(_line_mask(angle), 4, 200)
        orientation, semi_axis, uncertainty = streak_geometry(mu20, mu02, mu11, 1.0)
        assert areas.tolist() == [31]
        assert orientation[0] == pytest.approx(expected)
        # A 31-pixel line has variance (31² - 1) / 12 = 80 along it and 0 across.
        assert semi_axis[0] == pytest.approx(math.sqrt(80.0))
        assert uncertainty[0] == pytest.approx(math.sqrt(80.0**2) / 80.0**2)


@pytest.mark.parametrize("angle", [20, 45, 60, 110, 135, 160])
def test_orientation_oblique_lines(angle):
    _, mu20, mu02, mu11 = blob_moments(_line_mask(angle), 4, 200)
    orientation, _, _ = streak_geometry(mu20, mu02, mu11, 1.0)
    assert math.degrees(orientation[0]) == pytest.approx(angle, abs=2.0)


def test_uncertainty_scales_with_dm():
    _, mu20, mu02, mu11 = blob_moments(_line_mask(60), 4, 200)
    _, _, full = streak_geometry(mu20, mu02, mu11, 1.0)
    _, _, half = streak_geometry(mu20, mu02, mu11, 0.5)
    assert half[0] == pytest.approx(full[0] / 2)


def test_round_blob_uncertainty_is_one():
    mask = np.zeros((10, 10), bool)
    mask[3:6, 3:6] = True
    _, mu20, mu02, mu11 = blob_moments(mask, 4, 50)
    _, _, uncertainty = streak_geometry(mu20, mu02, mu11, 1.0)
    assert uncertainty.tolist() == [1.0]


def test_blob_size_limits_inclusive():
    mask = np.zeros((40, 80), bool)
    mask[1, 0:3] = True  # 3 pixels: below the minimum
    mask[5, 0:4] = True  # 4 pixels: kept
    mask[10:15, 0:10] = True  # 50 pixels: kept
    mask[20:31, 20:25] = True  # 55 pixels: above the maximum
    areas, _, _, _ = blob_moments(mask, 4, 50)
    assert sorted(areas.tolist()) == [4, 50]


def test_blobs_are_8_connected():
    mask = np.zeros((10, 10), bool)
    for step in range(5):
        mask[step, step] = True  # a diagonal: one blob with 8-connectivity
    areas, _, _, _ = blob_moments(mask, 4, 50)
    assert areas.tolist() == [5]


def test_candidate_needs_more_than_c():
    frame = np.array([[13, 14, 200, 10]], np.uint8)
    background = np.array([[10, 10, 10, 50]], np.uint8)
    foreground = np.array([[255, 255, 0, 255]], np.uint8)
    assert candidate_mask(frame, background, foreground, 3).tolist() == [
        [False, True, False, False]
    ]


# --- histogram, EM, goodness of fit, Kalman ----------------------------------------------------


def test_histogram_of_single_blob():
    histogram, surface = orientation_histogram(np.array([1.0]), np.array([5.0]), np.array([0.1]))
    expected = (
        5.0 / (0.1 * math.sqrt(2 * math.pi)) * np.exp(-0.5 * ((HISTOGRAM_BINS - 1.0) / 0.1) ** 2)
    )
    assert histogram == pytest.approx(expected, rel=1e-12)
    assert surface == pytest.approx(expected.sum(), rel=1e-12)
    assert int(np.argmax(histogram)) == 57  # 1 rad is 57.3 degrees


def test_histogram_of_two_blobs_adds():
    one, _ = orientation_histogram(np.array([0.5]), np.array([2.0]), np.array([0.2]))
    two, _ = orientation_histogram(np.array([2.0]), np.array([3.0]), np.array([0.05]))
    both, _ = orientation_histogram(
        np.array([0.5, 2.0]), np.array([2.0, 3.0]), np.array([0.2, 0.05])
    )
    assert both == pytest.approx(one + two)


def _mixture_histogram(mean: float, std: float, proportion: float, total: float) -> np.ndarray:
    from scipy.stats import norm

    width = math.pi / 180
    gaussian = norm.pdf(HISTOGRAM_BINS, mean, std) * width
    return total * (proportion * gaussian + (1 - proportion) * width / math.pi)


def test_em_recovers_mixture():
    histogram = _mixture_histogram(1.3, 0.12, 0.6, 1000.0)
    mean, std, proportion = fit_mixture(histogram, float(histogram.sum()), 100)
    assert mean == pytest.approx(1.3, abs=0.01)
    assert std == pytest.approx(0.12, abs=0.01)
    assert proportion == pytest.approx(0.6, abs=0.03)


def test_em_on_flat_histogram_has_no_gaussian():
    histogram = np.full(180, 2.0)
    mean, std, proportion = fit_mixture(histogram, float(histogram.sum()), 100)
    # Every bin equals the median, so the start has zero weight: mean pi/2, std 0, proportion 0.
    assert (mean, std, proportion) == (math.pi / 2, 0.0, 0.0)


def test_goodness_of_fit_of_exact_mixture_is_zero():
    from scipy.special import erf

    mean, std, proportion = 1.4, 0.15, 0.55
    normal = 0.5 * (1 + erf((HISTOGRAM_BINS - mean) / (std * math.sqrt(2))))
    uniform = np.arange(1, 181) / 180
    cdf = proportion * normal + (1 - proportion) * uniform
    histogram = np.diff(np.concatenate([[0.0], cdf]))
    assert goodness_of_fit(histogram, float(histogram.sum()), mean, std, proportion) < 1e-9
    assert goodness_of_fit(histogram, float(histogram.sum()), mean + 0.3, std, proportion) > 0.1


def test_goodness_of_fit_nan_gives_one():
    histogram = np.zeros(180)
    assert goodness_of_fit(histogram, 0.0, math.pi / 2, 0.0, 0.0) == 1.0


def test_kalman_matches_opencv():
    import cv2

    reference = cv2.KalmanFilter(6, 3, 0, cv2.CV_64F)
    reference.transitionMatrix = np.eye(6) + np.eye(6, k=3)
    reference.measurementMatrix = np.eye(3, 6)
    reference.processNoiseCov = np.eye(6) * 0.01
    reference.measurementNoiseCov = np.eye(3) * 0.1
    reference.errorCovPost = np.eye(6)
    smoother = KalmanSmoother()
    rng = np.random.default_rng(1)
    for _ in range(30):
        measurement = rng.random(3)
        reference.predict()
        expected = reference.correct(measurement.reshape(3, 1)).ravel()[:3]
        assert smoother.update(measurement) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_kalman_first_update_smooths_towards_measurement():
    corrected = KalmanSmoother().update(np.array([1.0, 0.2, 0.5]))
    # P' = F I F' + 0.01 I has 2.01 on the measured diagonal; gain = 2.01 / 2.11.
    assert corrected == pytest.approx(np.array([1.0, 0.2, 0.5]) * 2.01 / 2.11)


# --- the detector on rendered frames ----------------------------------------------------------


def _frames(count: int, rainy: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    import cv2

    rng = np.random.default_rng(seed)
    scene = np.tile(np.linspace(60, 140, 96, dtype=np.float32), (72, 1))
    frames = []
    for index in range(count):
        frame = scene + rng.normal(0, 1.0, scene.shape).astype(np.float32)
        if rainy[index]:
            for _ in range(25):
                x, y = rng.uniform(0, 96), rng.uniform(0, 72)
                angle = math.radians(rng.normal(70, 3))
                length = rng.uniform(6, 11)
                end = (int(x + length * math.cos(angle)), int(y + length * math.sin(angle)))
                cv2.line(frame, (int(x), int(y)), end, float(frame[int(y), int(x)] + 40), 1)
        gray = np.clip(frame, 0, 255).astype(np.uint8)
        frames.append(np.repeat(gray[:, :, None], 3, axis=2))
    return frames


def _run_detector(parameters: BossuParameters, frames: list[np.ndarray]) -> list[FrameResult]:
    detector = BossuDetector(parameters)
    results = [detector.process(frame) for frame in frames]
    assert all(result is None for result in results[: parameters.warm_up_frames])
    return [result for result in results if result is not None]


def test_detector_finds_rain_and_no_rain():
    rainy = np.zeros(60, bool)
    rainy[25:45] = True
    parameters = BossuParameters(warm_up_frames=20)
    rows = _run_detector(parameters, _frames(60, rainy))

    assert [row.frame for row in rows] == list(range(21, 61))
    by_frame = {row.frame: row for row in rows}
    rain_rows = [by_frame[frame] for frame in range(26, 46)]
    dry_rows = [by_frame[frame] for frame in range(50, 61)]
    assert sum(row.em_rain for row in rain_rows) >= 15
    assert not any(row.em_rain or row.kalman_rain for row in dry_rows)
    # The detected orientation is that of the streaks: 180 - 70 degrees.
    assert math.degrees(np.median([row.gauss_mean for row in rain_rows])) == pytest.approx(
        110, abs=5
    )


def test_detector_decision_and_kalman_rules():
    rainy = np.zeros(70, bool)
    rainy[25:40] = True
    rainy[50:58] = True
    parameters = BossuParameters(warm_up_frames=20)
    rows = _run_detector(parameters, _frames(70, rainy, seed=4))

    max_gof = float(np.float32(0.06))
    min_surface = float(np.float32(0.35))
    smoother = KalmanSmoother()
    kalman = (0.0, 0.0, 0.0)
    for row in rows:
        if row.blobs == 0:
            assert (row.gauss_mean, row.goodness_of_fit, row.kalman_mix_prop) == (-1, -1, -1)
            assert (row.rain_intensity, row.em_rain, row.kalman_rain) == (0.0, False, False)
            continue
        fits = row.goodness_of_fit <= max_gof
        if fits:
            kalman = tuple(
                smoother.update(np.array([row.gauss_mean, row.gauss_std, row.gauss_mix_prop]))
            )
        assert (row.kalman_mean, row.kalman_std, row.kalman_mix_prop) == pytest.approx(kalman)
        expected_em = fits and row.gauss_mix_prop >= min_surface
        expected_kalman = fits and row.kalman_mix_prop >= min_surface
        assert row.em_rain == expected_em
        assert row.kalman_rain == expected_kalman
    assert any(row.blobs == 0 for row in rows)
    assert any(row.em_rain for row in rows)


def test_detector_rejects_grey_frames():
    with pytest.raises(FieldHarnessError, match="HxWx3 uint8 RGB"):
        BossuDetector().process(np.zeros((8, 8), np.uint8))


def test_parameters_validate():
    with pytest.raises(FieldHarnessError, match="maximum_blob_size=3"):
        BossuParameters(minimum_blob_size=4, maximum_blob_size=3)
    with pytest.raises(FieldHarnessError, match="c=-1"):
        BossuParameters(c=-1)


# --- the official files ----------------------------------------------------------------------


def _result(frame: int, *, blobs: int = 3, em: bool = True) -> FrameResult:
    if blobs == 0:
        return FrameResult(frame, -1, -1, -1, -1, -1, -1, -1, 0.0, 0.0, False, False, 0)
    return FrameResult(frame, 1.5, 0.1, 0.6, 0.03, 1.4, 0.12, 0.55, 120.5, 110.25, em, False, blobs)


def test_results_csv_official_layout(tmp_path):
    path = write_results_csv(
        tmp_path / "video.mp4_Results.csv",
        [_result(4), _result(5, blobs=0)],
        settings_file="out/video.mp4_Settings.txt",
        input_video="video.mp4",
        warm_up_frames=3,
    )
    lines = path.read_text().split("\n")
    assert lines[0] == OFFICIAL_HEADER
    assert lines[1:4] == ["", "", ""]
    assert lines[4] == (
        "out/video.mp4_Settings.txt;video.mp4; 4; 1.500000;0.100000;0.600000;0.030000;1.400000;"
        "0.120000;0.550000;120.500000;110.250000;1.000000;0.000000"
    )
    assert lines[5] == "out/video.mp4_Settings.txt;video.mp4; 5; -1;-1;-1;-1;-1;-1;-1;0;0;0;0"


def test_results_csv_round_trip(tmp_path):
    rows = [_result(501), _result(502, blobs=0), _result(503, em=False)]
    path = write_results_csv(
        tmp_path / "a_Results.csv", rows, settings_file="s.txt", input_video="a.mkv"
    )
    results = read_results_csv(path)
    assert results.has_detections
    assert (results.settings_file, results.input_video) == ("s.txt", "a.mkv")
    assert results.table["frame"].to_list() == [501, 502, 503]
    assert results.frame_indices.tolist() == [500, 501, 502]
    assert results.table["em_rain"].to_list() == [True, False, False]
    assert results.table["gauss_mean"].to_list() == [1.5, -1.0, 1.5]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("s;v; 7; 1;2;3;4;5;6;7;8;9;1", "row has 13 fields"),
        ("s;v; x7; 1;2;3;4;5;6;7;8;9;1;0", "field 'Frame#', value ' x7'"),
        ("s;v; 7; 1;abc;3;4;5;6;7;8;9;1;0", "field 'GaussStdDev', value 'abc'"),
        ("s;v; 7; 1;2;3;4;5;6;7;8;9;0.5;0", "field 'EM Rain Detected', value '0.5'"),
    ],
)
def test_results_csv_malformed_rows(tmp_path, row, message):
    path = tmp_path / "bad_Results.csv"
    path.write_text(f"{OFFICIAL_HEADER}\n\n{row}\n")
    with pytest.raises(DataFormatError, match=f"bad_Results.csv:3: .*{message}"):
        read_results_csv(path)


def test_results_csv_unknown_header(tmp_path):
    path = tmp_path / "x_Results.csv"
    path.write_text("frame;value\n1;2\n")
    with pytest.raises(DataFormatError, match="x_Results.csv:1: unknown header"):
        read_results_csv(path)


def test_settings_round_trip(tmp_path):
    parameters = BossuParameters(maximum_blob_size=200, dm=0.5, max_gof_difference=0.19)
    path = write_settings(tmp_path / "v_Settings.txt", parameters)
    read_back = read_settings(path)
    assert read_back.maximum_blob_size == 200
    assert read_back.dm == 0.5
    assert read_back.max_gof_difference == float(np.float32(0.19))
    assert "maxGoFDifference: 1.8999999761581421e-01\n" in settings_text(parameters)


def test_settings_zero_keeps_default_like_cpp(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("%YAML:1.0\nc: 0\nmaximumBlobSize: 80\ndm: 0.\nemMaxIterations: -3\n")
    parameters = read_settings(path)
    assert (parameters.c, parameters.maximum_blob_size) == (3, 80)
    assert (parameters.dm, parameters.em_max_iterations) == (1.0, 100)


def test_settings_errors(tmp_path):
    missing_directive = tmp_path / "a.txt"
    missing_directive.write_text("c: 3\n")
    with pytest.raises(DataFormatError, match="a.txt:1: missing YAML directive"):
        read_settings(missing_directive)
    bad_value = tmp_path / "b.txt"
    bad_value.write_text("%YAML:1.0\nc: 3\nminimumBlobSize: four\n")
    with pytest.raises(DataFormatError, match="b.txt:3: invalid value .*'minimumBlobSize'"):
        read_settings(bad_value)
    unknown_key = tmp_path / "c.txt"
    unknown_key.write_text("%YAML:1.0\nthreshold: 3\n")
    with pytest.raises(DataFormatError, match="c.txt:2: unknown settings key"):
        read_settings(unknown_key)


# --- the real C++ output ---------------------------------------------------------------------


@needs_realdata
def test_real_results_csv_reads():
    results = read_results_csv(BOSSU_OUTPUT / "testVid1_Results.csv")
    table = results.table
    assert not results.has_detections
    assert results.input_video == "testVid1.avi"
    assert results.settings_file == (
        "D:/VAP_RainRemoval/BossuRainAnalysis/Output/testVid1.avi/testVid1.avi_Settings.txt"
    )
    assert table.height == 5985
    assert table["frame"][0] == 7
    assert table["frame"][-1] == 5991
    first = table.row(0, named=True)
    assert first["gauss_mean"] == 13.272790
    assert first["goodness_of_fit"] == 0.140026
    assert first["rain_intensity"] == 6139.579677
    assert first["em_rain"] is None
    last = table.row(-1, named=True)
    assert last["kalman_mix_prop"] == 0.102157
    assert last["kalman_rain_intensity"] == 23533.260489


@needs_realdata
def test_real_settings_read_and_rewrite():
    path = BOSSU_OUTPUT / "testVid1_Settings.txt"
    parameters = read_settings(path)
    assert (parameters.c, parameters.minimum_blob_size, parameters.maximum_blob_size) == (3, 4, 50)
    assert parameters.max_gof_difference == 5.9999998658895493e-02
    assert settings_text(parameters) == path.read_text()


@needs_realdata
def test_real_results_score_per_minute():
    from virada.bossu_baseline import score_results_csv

    # Labels made for the test: rain in the first two minutes of the 4-minute video.
    labels = VideoLabels(
        labels=np.array([1.0, 1.0, 0.0, 0.0]), per_file=False, frame_offset=0, fpm=1800
    )
    scored = score_results_csv(BOSSU_OUTPUT / "testVid1_Results.csv", labels)

    # With the file's settings (GoF 0.06, surface 0.35) no frame detects rain.
    for output in ("em", "kalman"):
        per_minute = scored[output]["per_minute"]
        assert scored[output]["minute_scores"].tolist() == [0.0, 0.0, 0.0, 0.0]
        assert (per_minute["TP"], per_minute["TN"], per_minute["FP"], per_minute["FN"]) == (
            0,
            2,
            0,
            2,
        )
        assert per_minute["precision"] == 1.0
        assert per_minute["f1_rain"] == 0.0
        assert per_minute["f1_norain"] == pytest.approx(2 / 3)
        assert per_minute["mcc"] == 0.0
        assert per_minute["AUROC"] == pytest.approx(0.5)
        assert per_minute["AUPR"] == pytest.approx(0.75)
        per_frame = scored[output]["per_frame"]
        # Frames 6..1799 and 1800..3599 are rainy, 3600..5990 dry.
        assert (per_frame["TP"], per_frame["TN"], per_frame["FP"], per_frame["FN"]) == (
            0,
            2391,
            0,
            3594,
        )


@needs_realdata
def test_real_results_with_looser_thresholds():
    from virada.bossu_baseline import score_results_csv

    labels = VideoLabels(
        labels=np.array([0.0, 1.0, 1.0, 0.0]), per_file=False, frame_offset=0, fpm=1800
    )
    parameters = BossuParameters(max_gof_difference=0.19, minimum_gaussian_surface=0.2)
    scored = score_results_csv(BOSSU_OUTPUT / "testVid1_Results.csv", labels, parameters=parameters)

    # Counts from the file by hand. Frame 5034 has GoF 0.190000 exactly, above the float32
    # threshold 0.18999999761581421, so minute 2 has 840 EM detections, not 841.
    em_scores = scored["em"]["minute_scores"]
    assert em_scores == pytest.approx([466 / 1794, 793 / 1800, 840 / 1800, 145 / 591])
    kalman_scores = scored["kalman"]["minute_scores"]
    assert kalman_scores == pytest.approx([82 / 1794, 673 / 1800, 529 / 1800, 22 / 591])
    em_sweep = scored["em"]["per_minute_sweep"]
    row = em_sweep.row(30, named=True)  # threshold 0.30: minutes 1 and 2 are rain
    assert (row["TP"], row["TN"], row["FP"], row["FN"]) == (2, 2, 0, 0)
    assert scored["em"]["per_minute"]["AUROC"] == pytest.approx(1.0)


# --- the baseline on the generated sample -----------------------------------------------------


@pytest.mark.slow
def test_baseline_on_sample_separates_rain(tmp_path):
    from harness.plugin import RunContext
    from harness.prepare import prepare_dataset
    from virada.bossu_baseline import BossuBaseline
    from virada.sample import write_virada_sample

    source = write_virada_sample(tmp_path / "sample")
    prepare_dataset("virada", source, progress=False)
    baseline = BossuBaseline()
    parser = argparse.ArgumentParser()
    baseline.add_arguments(parser)
    args = parser.parse_args(["--split", "test"])
    output = tmp_path / "run"
    output.mkdir()
    outcome = baseline.run(args, RunContext(output_dir=output))

    assert outcome.data_kind == "sample"
    assert outcome.config["label_source"] == "json"
    assert "workers" not in outcome.config
    assert outcome.metrics["minute_mcc"] > 0.5
    assert outcome.metrics["em_minute_mcc"] > 0.5
    assert outcome.metrics["frame_mcc"] > 0.5
    csv_path = output / "bossu_output" / "20180414_163039-left.mp4_Results.csv"
    results = read_results_csv(csv_path)
    assert results.has_detections
    assert results.table["frame"][0] == 501
    assert csv_path.read_text().split("\n")[0] == ";".join(CSV_COLUMNS)
    assert (output / "bossu_kalman_per_minute_sweep.csv").is_file()
    assert (output / "bossu_em_per_minute.png").is_file()
    assert set(outcome.per_item) == {"20180414_163039-left.mp4", "6-14-11-05-39-cam.mp4"}
