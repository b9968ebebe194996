"""Video file names of the two VIRADA crossings and the recording start time they encode.

Crossing 1: ``YYYYMMDD_hhmmss-<suffix>``, e.g. ``20180412_130000-left.mkv``; every recording is
cut into a left and a right crop, marked by ``left`` or ``right`` in the suffix.
Crossing 2: ``M-DD-hh[-mm-ss]-<suffix>``, e.g. ``6-12-14-cam.mkv``; the name has no year, and
the authors' scripts (``Analysis/generate_videoCSV.py`` in ``chrisbahnsen/aau-virada``) use 2013.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import DataFormatError

__all__ = ["CROSSING2_YEAR", "VIDEO_EXTENSIONS", "VideoName", "parse_video_name"]

CROSSING2_YEAR = 2013
VIDEO_EXTENSIONS = (".mkv", ".mp4")

SCHEMES = ("Crossing 1 'YYYYMMDD_hhmmss-<suffix>' (e.g. 20180412_130000-left.mkv) or "
           "Crossing 2 'M-DD-hh[-mm-ss]-<suffix>' (e.g. 6-12-14-cam.mkv)")

_CROSSING1 = re.compile(r"^(?P<date>\d{8})_(?P<time>\d{6})(?:-(?P<suffix>.*))?$")
_CROSSING2 = re.compile(
    r"^(?P<month>\d{1,2})-(?P<day>\d{1,2})-(?P<hour>\d{1,2})"
    r"(?:-(?P<minute>\d{2})-(?P<second>\d{2}))?(?:-(?P<suffix>.*))?$"
)


@dataclass(frozen=True)
class VideoName:
    """The fields of a VIRADA video file name."""

    stem: str
    """File name without the extension."""
    crossing: int
    """1 or 2."""
    start: datetime.datetime
    """Naive local start time; Crossing 2 names without minutes and seconds start on the hour."""
    side: str | None
    """``"left"`` or ``"right"`` for a Crossing 1 crop, ``None`` otherwise."""
    suffix: str


def parse_video_name(path: str | Path) -> VideoName:
    """Parse a video file name of either crossing.

    Raises:
        DataFormatError: the name follows neither scheme, or its date or time does not exist
            (e.g. month 13); the message names the file and both valid schemes.
    """
    path = Path(path)
    stem = path.name
    for extension in VIDEO_EXTENSIONS:
        if stem.lower().endswith(extension):
            stem = stem[: -len(extension)]
            break

    match = _CROSSING1.match(stem)
    if match is not None:
        return _crossing1(path, stem, match)
    match = _CROSSING2.match(stem)
    if match is not None:
        return _crossing2(path, stem, match)
    raise DataFormatError("video name follows neither naming scheme", path=path, value=path.name,
                          expected=SCHEMES)


def _crossing1(path: Path, stem: str, match: re.Match[str]) -> VideoName:
    date, time = match["date"], match["time"]
    start = _make_datetime(path, int(date[:4]), int(date[4:6]), int(date[6:8]),
                           int(time[:2]), int(time[2:4]), int(time[4:6]))
    suffix = match["suffix"] or ""
    # The official scripts look for the words anywhere in the name; a name with neither is kept
    # by every side selection.
    side = None
    if "left" in suffix.lower():
        side = "left"
    elif "right" in suffix.lower():
        side = "right"
    return VideoName(stem=stem, crossing=1, start=start, side=side, suffix=suffix)


def _crossing2(path: Path, stem: str, match: re.Match[str]) -> VideoName:
    minute = int(match["minute"]) if match["minute"] is not None else 0
    second = int(match["second"]) if match["second"] is not None else 0
    start = _make_datetime(path, CROSSING2_YEAR, int(match["month"]), int(match["day"]),
                           int(match["hour"]), minute, second)
    return VideoName(stem=stem, crossing=2, start=start, side=None, suffix=match["suffix"] or "")


def _make_datetime(path: Path, *fields: int) -> datetime.datetime:
    try:
        return datetime.datetime(*fields)
    except ValueError as error:
        raise DataFormatError(f"video name encodes an invalid date or time ({error})", path=path,
                              value=path.name, expected=SCHEMES) from None
