"""VIRADA labels from rain gauges: file readers, station choice, clock offset, real Viborg data."""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import numpy as np
import pytest

from harness.errors import DataFormatError
from virada.gauges import (
    DEFAULT_POSITION,
    NoGaugeError,
    Station,
    haversine_km,
    labels_for_video,
    nearest_station,
    read_gauge_file,
    read_gauge_folder,
    read_station_list,
)
from virada.names import parse_video_name

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
GAUGES = SHARED / "realdata" / "virada" / "gauges"
VIBORG_RECORDS = GAUGES / "Viborg-01-Jun-2013-01-Jul-2013.txt"

realdata = pytest.mark.skipif(not GAUGES.is_dir(),
                              reason=f"real VIRADA gauge files not found at {GAUGES}")

KM_PER_DEGREE_LAT = 6371.0 * math.pi / 180


def write_records(path: Path, start: str, values: list[list[float]], ids=(1,)) -> Path:
    """Write a gauge file whose rows start at ``start`` and follow minute by minute."""
    first = datetime.datetime.strptime(start, "%Y-%m-%d %H:%M:%S")
    rows = ["0," + ",".join(str(i) for i in ids)]
    for k, row in enumerate(values):
        time = first + datetime.timedelta(minutes=k)
        rows.append(f"{time:%Y-%m-%d %H:%M:%S}," + ",".join(f"{v:.6f}" for v in row))
    path.write_text("\r\n".join(rows) + "\r\n")
    return path


def station_north(station_id: int, km: float) -> Station:
    """A station ``km`` north of the default camera position."""
    lat = DEFAULT_POSITION[0] + km / KM_PER_DEGREE_LAT
    return Station(station_id, f"S{station_id}", lat, DEFAULT_POSITION[1])


# --- station lists --------------------------------------------------------------------------

@realdata
def test_station_list_viborg() -> None:
    stations = read_station_list(GAUGES / "ViborgGaugeInfo.txt")
    assert sorted(stations) == [5121, 5122]
    assert stations[5121].name == "VIBORG MATERIELGÅRD"
    assert stations[5121].lat == pytest.approx(56.45121524)
    assert stations[5121].lon == pytest.approx(9.38524284)


@realdata
def test_station_list_aalborg_default_position() -> None:
    stations = read_station_list(GAUGES / "AalborgGaugeInfo.txt")
    assert len(stations) == 8
    assert stations[5052].name.startswith("ÅLBORG ØSTERPORT")
    assert (stations[5052].lat, stations[5052].lon) == DEFAULT_POSITION


def test_station_list_malformed_row(tmp_path: Path) -> None:
    path = tmp_path / "BadGaugeInfo.txt"
    path.write_bytes("05-Nr,Navn,a,b,c,d\r\n1,ONE,0,0,0,0,57.0,9.9\r\n2,TWO,0,0,0,0,57.1,east\r\n"
                     .encode("iso-8859-1"))
    with pytest.raises(DataFormatError, match=r"BadGaugeInfo.txt:3: .*longitude.*'east'"):
        read_station_list(path)


def test_station_list_bad_id(tmp_path: Path) -> None:
    path = tmp_path / "BadGaugeInfo.txt"
    path.write_text("header\nx12,ONE,0,0,0,0,57.0,9.9\n")
    with pytest.raises(DataFormatError, match=r"BadGaugeInfo.txt:2: .*'id'.*'x12'"):
        read_station_list(path)


# --- gauge files ----------------------------------------------------------------------------

def test_gauge_file_malformed_value(tmp_path: Path) -> None:
    path = write_records(tmp_path / "G-01-Jan-2020-02-Jan-2020.txt", "2020-01-01 00:00:00",
                         [[0.0], [0.1], [0.0]])
    lines = path.read_text().splitlines()
    lines[3] = "2020-01-01 00:02:00,wet"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"G-01-Jan-2020-02-Jan-2020.txt:4: .*'wet'"):
        read_gauge_file(path)


@pytest.mark.parametrize(("row", "message"), [
    ("2020-01-01 00:03:00,0.1,0.2", "row has 3 fields"),
    ("2020-13-01 00:03:00,0.1", "invalid timestamp"),
    ("2020-01-01 00:03:30,0.1", "not a whole minute"),
    ("2020-01-01 00:01:00,0.1", "does not follow the previous row"),
    ("2020-01-01 00:03:00,-0.5", "invalid precipitation"),
])
def test_gauge_file_malformed_rows(tmp_path: Path, row: str, message: str) -> None:
    path = write_records(tmp_path / "G.txt", "2020-01-01 00:00:00", [[0.0], [0.1], [0.0]])
    path.write_text(path.read_text() + row + "\n")
    with pytest.raises(DataFormatError, match=rf"G.txt:5: .*{message}"):
        read_gauge_file(path)


def test_gauge_file_bad_header(tmp_path: Path) -> None:
    path = tmp_path / "G.txt"
    path.write_text("time,5121\n2020-01-01 00:00:00,0.0\n")
    with pytest.raises(DataFormatError, match=r"G.txt:1: invalid header"):
        read_gauge_file(path)


def test_gauge_folder_unknown_station(tmp_path: Path) -> None:
    (tmp_path / "XGaugeInfo.txt").write_text("header\n1,ONE,0,0,0,0,57.0,9.9\n")
    write_records(tmp_path / "X-01-Jan-2020-02-Jan-2020.txt", "2020-01-01 00:00:00",
                  [[0.0, 0.0]], ids=(1, 7))
    with pytest.raises(DataFormatError, match=r"no station list has .*value 7"):
        read_gauge_folder(tmp_path)


def test_gauge_nan_marks_missing_minute(tmp_path: Path) -> None:
    records = read_gauge_file(write_records(tmp_path / "G.txt", "2020-01-01 00:00:00",
                                            [[0.0], [math.nan], [0.3]]))
    start = datetime.datetime(2020, 1, 1, 0, 0)
    assert records.minutes(1, start, start + datetime.timedelta(minutes=2)) is None
    values = records.minutes(1, start + datetime.timedelta(minutes=2),
                             start + datetime.timedelta(minutes=2))
    assert values.tolist() == [0.3]


# --- station choice -------------------------------------------------------------------------

def test_haversine_one_degree_latitude() -> None:
    assert haversine_km((57.0, 9.95), (58.0, 9.95)) == pytest.approx(KM_PER_DEGREE_LAT)


def test_nearest_station_ten_km_boundary(tmp_path: Path) -> None:
    records = read_gauge_file(write_records(tmp_path / "G.txt", "2020-01-01 00:00:00",
                                            [[0.1, 0.2]] * 3, ids=(1, 2)))
    start, end = datetime.datetime(2020, 1, 1, 0, 0), datetime.datetime(2020, 1, 1, 0, 2)
    inside = {1: station_north(1, 9.999), 2: station_north(2, 10.001)}
    match = nearest_station(inside, DEFAULT_POSITION, start, end, [records])
    assert match.station.id == 1
    assert match.distance_km == pytest.approx(9.999)

    outside = {1: station_north(1, 10.001), 2: station_north(2, 10.002)}
    with pytest.raises(NoGaugeError, match=r"closer than 10 km.*10\.001 km away"):
        nearest_station(outside, DEFAULT_POSITION, start, end, [records])

    # A station exactly at the limit does not qualify: the official test is "distance < limit".
    exact = haversine_km(DEFAULT_POSITION, (inside[1].lat, inside[1].lon))
    with pytest.raises(NoGaugeError):
        nearest_station({1: inside[1], 2: inside[2]}, DEFAULT_POSITION, start, end, [records],
                        max_km=exact)
    assert nearest_station(inside, DEFAULT_POSITION, start, end, [records],
                           max_km=exact * (1 + 1e-12)).station.id == 1


def test_nearest_station_skips_uncovered(tmp_path: Path) -> None:
    # Station 1 (1 km) stops recording after the first minute; station 2 (5 km) covers.
    records = read_gauge_file(write_records(tmp_path / "G.txt", "2020-01-01 00:00:00",
                                            [[0.0, 0.2], [math.nan, 0.0], [math.nan, 0.4]],
                                            ids=(1, 2)))
    stations = {1: station_north(1, 1.0), 2: station_north(2, 5.0)}
    start = datetime.datetime(2020, 1, 1, 0, 0)
    match = nearest_station(stations, DEFAULT_POSITION, start,
                            start + datetime.timedelta(minutes=2), [records])
    assert match.station.id == 2
    assert match.mm.tolist() == [0.2, 0.0, 0.4]
    short = nearest_station(stations, DEFAULT_POSITION, start, start, [records])
    assert short.station.id == 1


# --- labels for a video ---------------------------------------------------------------------

@pytest.fixture
def noon_rain(tmp_path: Path) -> tuple[dict[int, Station], list]:
    """Gauge records 2013-06-12 11:50 to 14:30 with rain only in minute 12:00 (gauge time)."""
    start = datetime.datetime(2013, 6, 12, 11, 50)
    values = []
    for k in range(161):
        time = start + datetime.timedelta(minutes=k)
        values.append([0.4 if time == datetime.datetime(2013, 6, 12, 12, 0) else 0.0])
    records = read_gauge_file(write_records(tmp_path / "G.txt", f"{start:%Y-%m-%d %H:%M:%S}",
                                            values))
    return {1: station_north(1, 0.5)}, [records]


def test_clock_offset_direction(noon_rain) -> None:
    stations, records = noon_rain
    name = parse_video_name("6-12-14-cam.mkv")  # 14:00 local time
    labels = labels_for_video(name, 900, 30, stations, records)
    # 14:00 local minus the 2 hour offset is 12:00 on the gauge clock, the rainy minute.
    assert labels.timestamps == ["2013-06-12 12:00:00", "2013-06-12 12:01:00"]
    assert labels.labels.tolist() == [1.0, 0.0]
    assert labels.frame_offset == 0

    same_clock = labels_for_video(parse_video_name("6-12-12-cam.mkv"), 900, 30, stations,
                                  records, clock_offset_hours=0)
    assert same_clock.labels.tolist() == [1.0, 0.0]
    other = labels_for_video(name, 900, 30, stations, records, clock_offset_hours=0)
    assert other.timestamps[0] == "2013-06-12 14:00:00"
    assert other.labels.tolist() == [0.0, 0.0]


@pytest.mark.parametrize(("frames", "count"), [(1, 2), (1799, 2), (1800, 2), (1801, 3)])
def test_minute_count_without_offset(noon_rain, frames: int, count: int) -> None:
    stations, records = noon_rain
    labels = labels_for_video(parse_video_name("6-12-14-cam.mkv"), frames, 30, stations,
                              records)
    # generate_labels.py takes the gauge minutes start .. start + ceil(N / FPM) inclusive.
    assert len(labels.labels) == count
    assert labels.frame_count == frames
    assert labels.fpm == 1800


@pytest.mark.parametrize(("frames", "count"), [(15, 1), (16, 2), (1815, 2), (1816, 3)])
def test_minute_count_with_offset(noon_rain, frames: int, count: int) -> None:
    stations, records = noon_rain
    name = parse_video_name("6-12-13-59-59-cam.mp4")  # 1 second left: offset 30 - 15 = 15
    labels = labels_for_video(name, frames, 30, stations, records)
    assert labels.frame_offset == 15
    assert labels.timestamps[0] == "2013-06-12 11:59:00"
    assert len(labels.labels) == count
    assert labels.labels[:2].tolist() == [0.0, 1.0][:count]


def test_label_kind_mm(noon_rain) -> None:
    stations, records = noon_rain
    labels = labels_for_video(parse_video_name("6-12-14-cam.mkv"), 900, 30, stations, records,
                              kind="mm")
    assert labels.labels.tolist() == [0.4, 0.0]
    with pytest.raises(ValueError, match="label kind"):
        labels_for_video(parse_video_name("6-12-14-cam.mkv"), 900, 30, stations, records,
                         kind="litres")


def test_video_past_records_end(noon_rain) -> None:
    stations, records = noon_rain
    # Records end at 14:30 gauge time (16:30 local). A video from 16:29 local with
    # 1801 frames needs 14:29, 14:30 and 14:31.
    ok = labels_for_video(parse_video_name("6-12-16-29-00-cam.mp4"), 1800, 30, stations,
                          records)
    assert ok.timestamps[-1] == "2013-06-12 14:30:00"
    with pytest.raises(NoGaugeError, match=r"video 6-12-16-29-00-cam: .*14:31:00"):
        labels_for_video(parse_video_name("6-12-16-29-00-cam.mp4"), 1801, 30, stations,
                         records)


# --- real Viborg records --------------------------------------------------------------------

@realdata
def test_viborg_records_span() -> None:
    records = read_gauge_file(VIBORG_RECORDS)
    assert records.station_ids == [5121, 5122]
    assert records.mm.shape == (25921, 2)
    # The name says 1 June to 1 July; the records run from 12 to 30 June.
    assert records.first == datetime.datetime(2013, 6, 12, 0, 0)
    assert records.last == datetime.datetime(2013, 6, 30, 0, 0)


@realdata
def test_viborg_labels_equal_file_values() -> None:
    stations, records = read_gauge_folder(GAUGES)
    station = stations[5121]
    # 09:09:39 local time is 07:09 on the gauge clock; offset (60 - 39) * 30 - 15 = 615.
    name = parse_video_name("20130614_090939-left.mkv")
    labels = labels_for_video(name, 3000, 30, stations, records,
                              position=(station.lat, station.lon), kind="mm")
    assert labels.frame_offset == 615
    assert labels.timestamps == ["2013-06-14 07:09:00", "2013-06-14 07:10:00",
                                 "2013-06-14 07:11:00"]
    # Column 5121 of Viborg-01-Jun-2013-01-Jul-2013.txt, lines 3311, 3312 and 3313.
    assert labels.labels.tolist() == [0.10002, 6.49998, 2.59998]

    binary = labels_for_video(name, 3000, 30, stations, records,
                              position=(station.lat, station.lon))
    assert binary.labels.tolist() == [1.0, 1.0, 1.0]


@realdata
def test_viborg_second_station_and_dry_minute() -> None:
    stations, records = read_gauge_folder(GAUGES)
    station = stations[5122]
    # 19:46:00 local is 17:46 gauge time: lines 1068 to 1070 of the file.
    name = parse_video_name("20130612_194600-left.mkv")
    at_5121 = labels_for_video(name, 3600, 30, stations, records,
                               position=(stations[5121].lat, stations[5121].lon), kind="mm")
    assert at_5121.labels.tolist() == [0.0, 0.0, 0.19998]
    at_5122 = labels_for_video(name, 3600, 30, stations, records,
                               position=(station.lat, station.lon), kind="mm")
    assert at_5122.labels.tolist() == [0.0, 0.0, 0.0]
    # 16:46 local on 15 June is 14:46 gauge time: line 5208, where 5122 measured 0.79998 mm.
    later = labels_for_video(parse_video_name("20130615_164600-left.mkv"), 1800, 30, stations,
                             records, position=(station.lat, station.lon), kind="mm")
    assert later.labels.tolist() == [0.79998, 1.39998]


@realdata
def test_viborg_coverage_from_records() -> None:
    stations, records = read_gauge_folder(GAUGES)
    position = (stations[5121].lat, stations[5121].lon)
    # 11 June is inside the file name's period but not in its records.
    with pytest.raises(NoGaugeError, match="lack a minute of the video"):
        labels_for_video(parse_video_name("20130611_120000-left.mkv"), 1800, 30, stations,
                         records, position=position)
    # The last record is 30 June 00:00: a video ending there is covered, one minute more is not.
    last = labels_for_video(parse_video_name("20130630_015900-left.mkv"), 1800, 30, stations,
                            records, position=position)
    assert last.timestamps == ["2013-06-29 23:59:00", "2013-06-30 00:00:00"]
    with pytest.raises(NoGaugeError):
        labels_for_video(parse_video_name("20130630_020000-left.mkv"), 1800, 30, stations,
                         records, position=position)


@realdata
def test_viborg_too_far_from_crossings() -> None:
    stations, records = read_gauge_folder(GAUGES)
    with pytest.raises(NoGaugeError, match=r"5121 'VIBORG MATERIELGÅRD' .*74\.957 km away"):
        labels_for_video(parse_video_name("20130614_090939-left.mkv"), 3000, 30, stations,
                         records)
    assert np.isfinite(haversine_km(DEFAULT_POSITION, (stations[5122].lat, stations[5122].lon)))


def test_missing_gauge_folder_names_the_option(tmp_path: Path) -> None:
    from harness.errors import FieldHarnessError

    with pytest.raises(FieldHarnessError, match=r"gauge folder .*nope not found; pass --gauges"):
        read_gauge_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FieldHarnessError, match=r"needs a station list '\*GaugeInfo\*\.txt'"):
        read_gauge_folder(tmp_path / "empty")
