"""Rain-gauge records and the per-minute rain labels derived from them.

Two file kinds, as in ``PixelRainGauge/Viborg_Aalborg_Data/`` of ``chrisbahnsen/rainremoval``:

- a station list ``*GaugeInfo*.txt`` (ISO-8859-1): a header, then one row per station with the
  station id, its name, ED50 and UTM coordinates, and the WGS84 latitude and longitude in the
  last two columns;
- per-minute records ``<Name>-DD-Mon-YYYY-DD-Mon-YYYY.txt``: a header ``0,<id1>,<id2>,...``,
  then one row ``YYYY-MM-DD hh:mm:ss,<mm>,<mm>,...`` per minute with the millimetres of rain
  each station measured in that minute.

The labelling rules follow ``Analysis/generate_labels.py`` and ``Analysis/RainGauges.py`` of
``chrisbahnsen/aau-virada``. The video's start time without its seconds, minus the clock offset,
is the first gauge minute. A video of N frames with frame offset o spans
``m = ceil((N - o) / FPM)`` more minutes, and the labels are the gauge minutes ``start ..
start + m`` inclusive. The station is the nearest one closer than 10 km whose records hold every
one of those minutes.

Known differences from the official scripts: coverage is decided from the records, not from the
dates in the file name (the Viborg June 2013 file is named 1 June to 1 July but contains 12 to 30
June); each column is placed at the station its header names (``RainGauges.py`` places every
column at the last station of the station list); a missing minute is an error instead of a
shorter label list.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import DataFormatError, FieldHarnessError
from virada.labels import VideoLabels, frame_offset_for
from virada.names import VideoName

__all__ = [
    "DEFAULT_CLOCK_OFFSET_HOURS",
    "DEFAULT_MAX_KM",
    "DEFAULT_POSITION",
    "LABEL_KINDS",
    "GaugeRecords",
    "NoGaugeError",
    "Station",
    "StationMatch",
    "haversine_km",
    "labels_for_video",
    "nearest_station",
    "read_gauge_file",
    "read_gauge_folder",
    "read_station_list",
]

DEFAULT_POSITION = (57.05, 9.95)
"""Latitude and longitude (WGS84) of the crossings, the default of ``generate_videoCSV.py``."""
DEFAULT_CLOCK_OFFSET_HOURS = 2
"""Hours subtracted from the video's local start time to get gauge time (``--hour_offset``)."""
DEFAULT_MAX_KM = 10.0
"""A station qualifies when it is strictly closer than this (``RainGauges.py``)."""
EARTH_RADIUS_M = 6371e3
LABEL_KINDS = ("binary", "mm")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


class NoGaugeError(DataFormatError):
    """No station within the distance limit has records for every minute of a video."""


@dataclass(frozen=True)
class Station:
    """One rain-gauge station of a station list."""

    id: int
    name: str
    lat: float
    lon: float
    """WGS84 degrees."""


@dataclass
class GaugeRecords:
    """The per-minute records of one gauge file."""

    path: Path
    station_ids: list[int]
    times: np.ndarray
    """Minutes as ``datetime64[m]``, strictly increasing."""
    mm: np.ndarray
    """Millimetres of rain, shape (minutes, stations); NaN where a station has no record."""

    @property
    def first(self) -> datetime.datetime | None:
        """First recorded minute."""
        return self.times[0].astype(datetime.datetime) if len(self.times) else None

    @property
    def last(self) -> datetime.datetime | None:
        """Last recorded minute."""
        return self.times[-1].astype(datetime.datetime) if len(self.times) else None

    def minutes(self, station_id: int, start: datetime.datetime,
                end: datetime.datetime) -> np.ndarray | None:
        """Return the station's millimetres for the minutes ``start .. end`` inclusive.

        Returns ``None`` unless every one of those minutes has a record for the station.
        """
        column = self.station_ids.index(station_id)
        first = np.datetime64(start, "m")
        last = np.datetime64(end, "m")
        i = int(np.searchsorted(self.times, first))
        j = int(np.searchsorted(self.times, last, side="right"))
        expected_count = int((last - first).astype(np.int64)) + 1
        if j - i != expected_count or expected_count <= 0 or self.times[i] != first:
            return None
        values = self.mm[i:j, column]
        if np.isnan(values).any():
            return None
        return values.copy()


@dataclass(frozen=True)
class StationMatch:
    """The station chosen for a video, its records and its distance from the camera."""

    station: Station
    records: GaugeRecords
    distance_km: float
    mm: np.ndarray
    """Millimetres per gauge minute of the video."""


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Return the great-circle distance in km between two (lat, lon) points in degrees.

    Uses the haversine formula on a sphere of radius 6371 km, as ``RainGauges.py`` does.
    """
    lat1, lon1 = map(math.radians, a)
    lat2, lon2 = map(math.radians, b)
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_M * math.atan2(math.sqrt(h), math.sqrt(1 - h)) / 1000


def _lines(path: Path, encoding: str) -> list[str]:
    # The real files end their lines with "\r\r\n"; splitting on "\n" keeps the line numbers
    # that other tools show for them.
    return [line.rstrip("\r") for line in path.read_bytes().decode(encoding).split("\n")]


def read_station_list(path: str | Path) -> dict[int, Station]:
    """Read a ``*GaugeInfo*.txt`` station list (ISO-8859-1) into stations by id.

    Raises:
        DataFormatError: a row has too few fields, a non-integer id, a repeated id, or a
            latitude or longitude that is not a number in range. The message names the line.
    """
    path = Path(path)
    stations: dict[int, Station] = {}
    for number, line in enumerate(_lines(path, "iso-8859-1"), start=1):
        if number == 1 or not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 4:
            raise DataFormatError("station row has too few fields", path=path, line=number,
                                  value=line, expected="id, name, ..., WGS84 latitude, longitude")
        station_id = _parse_int(path, number, "id", fields[0])
        lat = _parse_float(path, number, "latitude (WGS84)", fields[-2], -90.0, 90.0)
        lon = _parse_float(path, number, "longitude (WGS84)", fields[-1], -180.0, 180.0)
        if station_id in stations:
            raise DataFormatError("station id is listed twice", path=path, line=number,
                                  field="id", value=station_id, expected="unique station ids")
        stations[station_id] = Station(station_id, fields[1], lat, lon)
    return stations


def read_gauge_file(path: str | Path) -> GaugeRecords:
    """Read a per-minute gauge file.

    A value ``nan`` marks a minute the station did not record.

    Raises:
        DataFormatError: the header is not ``0,<id>,...``, or a row has the wrong number of
            fields, a timestamp that is not a whole minute after the previous row, or a value
            that is not a number >= 0; the message names the line.
    """
    path = Path(path)
    lines = _lines(path, "utf-8")
    header = [field.strip() for field in lines[0].split(",")] if lines else []
    if len(header) < 2 or header[0] != "0":
        raise DataFormatError("invalid header", path=path, line=1,
                              value=lines[0] if lines else "",
                              expected="'0,<station id>,<station id>,...'")
    station_ids = [_parse_int(path, 1, f"station id {k}", text)
                   for k, text in enumerate(header[1:], start=1)]

    times: list[datetime.datetime] = []
    rows: list[list[float]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != len(station_ids) + 1:
            raise DataFormatError(
                f"row has {len(fields)} fields", path=path, line=number, value=line,
                expected=f"a timestamp and {len(station_ids)} values, as in the header")
        try:
            time = datetime.datetime.strptime(fields[0], TIMESTAMP_FORMAT)
        except ValueError:
            raise DataFormatError("invalid timestamp", path=path, line=number,
                                  field="timestamp", value=fields[0],
                                  expected="'YYYY-MM-DD hh:mm:ss'") from None
        if time.second or time.microsecond:
            raise DataFormatError("timestamp is not a whole minute", path=path, line=number,
                                  field="timestamp", value=fields[0], expected="seconds 00")
        if times and time <= times[-1]:
            raise DataFormatError("timestamp does not follow the previous row's", path=path,
                                  line=number, field="timestamp", value=fields[0],
                                  expected=f"a minute after {times[-1]:{TIMESTAMP_FORMAT}}")
        values = [_parse_mm(path, number, station_ids[k], text)
                  for k, text in enumerate(fields[1:])]
        times.append(time)
        rows.append(values)

    mm = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(station_ids))
    return GaugeRecords(path=path, station_ids=station_ids,
                        times=np.asarray(times, dtype="datetime64[m]"), mm=mm)


def read_gauge_folder(folder: str | Path) -> tuple[dict[int, Station], list[GaugeRecords]]:
    """Read every station list (``*GaugeInfo*.txt``) and gauge file (other ``*.txt``) in a folder.

    Raises:
        FieldHarnessError: the folder does not exist, or has no station list or no gauge file.
        DataFormatError: a file is malformed, or a gauge file names a station that no station
            list has.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FieldHarnessError(f"gauge folder {folder} not found; pass --gauges the folder with "
                                "the station list (*GaugeInfo*.txt) and the gauge files")
    stations: dict[int, Station] = {}
    info_files = sorted(p for p in folder.glob("*.txt") if "GaugeInfo" in p.name)
    for info in info_files:
        stations.update(read_station_list(info))
    record_files = sorted(p for p in folder.glob("*.txt") if "GaugeInfo" not in p.name)
    if not info_files or not record_files:
        raise FieldHarnessError(
            f"gauge folder {folder} needs a station list '*GaugeInfo*.txt' and at least one "
            f"gauge file '<Name>-DD-Mon-YYYY-DD-Mon-YYYY.txt'; found {len(info_files)} and "
            f"{len(record_files)}")
    records = [read_gauge_file(p) for p in record_files]
    for record in records:
        for station_id in record.station_ids:
            if station_id not in stations:
                raise DataFormatError(
                    "gauge file names a station that no station list has", path=record.path,
                    line=1, field="station id", value=station_id,
                    expected="one of " + ", ".join(str(s) for s in sorted(stations)))
    return stations, records


def nearest_station(stations: dict[int, Station], position: tuple[float, float],
                    start: datetime.datetime, end: datetime.datetime,
                    gauge_records: Sequence[GaugeRecords], max_km: float = DEFAULT_MAX_KM
                    ) -> StationMatch:
    """Choose the nearest station closer than ``max_km`` with a record of every minute.

    Args:
        stations: Stations by id.
        position: The camera's (latitude, longitude), WGS84 degrees.
        start: First gauge minute (gauge clock).
        end: Last gauge minute, inclusive.
        gauge_records: The gauge files to search.
        max_km: Distance limit; a station exactly this far away does not qualify.

    Raises:
        NoGaugeError: no station qualifies; the message lists each candidate's distance and
            recorded period.
    """
    candidates = []
    for records in gauge_records:
        for station_id in records.station_ids:
            station = stations[station_id]
            distance = haversine_km(position, (station.lat, station.lon))
            candidates.append((distance, str(records.path), station_id, station, records))
    candidates.sort(key=lambda c: c[:3])

    reasons = []
    for distance, _, station_id, station, records in candidates:
        if not distance < max_km:
            reasons.append(f"{station.id} {station.name!r} in {records.path.name}: "
                           f"{distance:.3f} km away")
            continue
        values = records.minutes(station_id, start, end)
        if values is not None:
            return StationMatch(station, records, distance, values)
        reasons.append(f"{station.id} {station.name!r} in {records.path.name}: "
                       f"{distance:.3f} km away, records {records.first} to {records.last} "
                       "lack a minute of the video")
    raise NoGaugeError(
        f"no rain gauge closer than {max_km:g} km to {position[0]:.5f},{position[1]:.5f} has "
        f"records for every minute from {start:{TIMESTAMP_FORMAT}} to "
        f"{end:{TIMESTAMP_FORMAT}} (gauge time); candidates: "
        + ("; ".join(reasons) if reasons else "none"),
        expected="gauge files that cover the videos' period, or another --position (LAT,LON, "
                 "latitude first)")


def labels_for_video(name: VideoName, frame_count: int, fps: float,
                     stations: dict[int, Station], gauge_records: Sequence[GaugeRecords], *,
                     position: tuple[float, float] = DEFAULT_POSITION,
                     clock_offset_hours: float = DEFAULT_CLOCK_OFFSET_HOURS,
                     kind: str = "binary", max_km: float = DEFAULT_MAX_KM) -> VideoLabels:
    """Make the per-minute labels of a video from the nearest qualifying rain gauge.

    Args:
        name: The parsed video name; its start time is local time.
        frame_count: Frames of the video.
        fps: Frame rate; VIRADA videos have a whole number of frames per second.
        stations: Stations by id.
        gauge_records: Gauge files to search.
        position: Camera (latitude, longitude).
        clock_offset_hours: Hours subtracted from the local start time to get gauge time.
        kind: ``"binary"`` (1 when more than 0 mm fell in the minute, else 0) or ``"mm"``.
        max_km: Distance limit of :func:`nearest_station`.

    Raises:
        NoGaugeError: no station qualifies.
        ValueError: ``kind`` is not a label kind or ``fps`` is not a whole number.
    """
    if kind not in LABEL_KINDS:
        raise ValueError(f"label kind must be one of {', '.join(LABEL_KINDS)}, got {kind!r}")
    if fps <= 0 or abs(fps - round(fps)) > 1e-6:
        raise ValueError(f"frame rate must be a whole number of frames per second, got {fps}")
    fps_int = int(round(fps))
    fpm = fps_int * 60

    offset = frame_offset_for(name.start.second, fps_int)
    start = name.start.replace(second=0, microsecond=0)
    start -= datetime.timedelta(hours=clock_offset_hours)
    # ceil((N - offset) / FPM) more minutes, as generate_labels.py counts them.
    extra = -((offset - frame_count) // fpm) if frame_count > offset else 0
    end = start + datetime.timedelta(minutes=extra)

    try:
        match = nearest_station(stations, position, start, end, gauge_records, max_km)
    except NoGaugeError as error:
        raise NoGaugeError(f"video {name.stem}: {error.problem}",
                           expected=error.expected) from None
    values = (match.mm > 0).astype(np.float64) if kind == "binary" else match.mm
    minutes = np.arange(np.datetime64(start, "m"), np.datetime64(end, "m") + 1)
    timestamps = [m.astype(datetime.datetime).strftime(TIMESTAMP_FORMAT) for m in minutes]
    return VideoLabels(labels=values, per_file=False, frame_offset=offset,
                       timestamps=timestamps, frame_count=frame_count, fpm=fpm)


def _parse_int(path: Path, line: int, field: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataFormatError("invalid integer", path=path, line=line, field=field,
                              value=text, expected="an integer station id") from None


def _parse_float(path: Path, line: int, field: str, text: str, low: float,
                 high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        raise DataFormatError("invalid coordinate", path=path, line=line, field=field,
                              value=text, expected=f"a number from {low:g} to {high:g}")
    return value


def _parse_mm(path: Path, line: int, station_id: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if math.isnan(value):
        return value
    if not (value >= 0 and math.isfinite(value)):
        raise DataFormatError("invalid precipitation", path=path, line=line,
                              field=f"station {station_id}", value=text,
                              expected="millimetres >= 0, or nan for a missing minute")
    return value


