"""The VIRADA dataset plugin, registered as ``virada`` in ``fieldharness.datasets``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

from harness.errors import FieldHarnessError, UnknownNameError
from harness.plugin import DatasetPlugin, PreparedData
from harness.spec import DatasetSpec
from virada.spec import VIRADA_SPEC

__all__ = ["ViradaPlugin"]

SIDES = ("left", "right", "both")
LABEL_KINDS = ("binary", "mm")


class ViradaPlugin(DatasetPlugin):
    """VIRADA: videos in train/, val/ and tst/ with per-minute rain labels."""

    spec: ClassVar[DatasetSpec] = VIRADA_SPEC
    leaderboard_metrics: ClassVar[tuple[str, ...]] = (
        "minute_f1_rain", "minute_f1_norain", "minute_mcc", "minute_accuracy", "minute_auroc",
        "minute_aupr", "frame_f1_rain", "frame_mcc")

    prepare_options: ClassVar[dict[str, str]] = {
        "gauges": "folder with a station list (*GaugeInfo*.txt) and per-minute gauge files; "
                  "the labels are then made from the gauge records",
        "label_file": "label JSON to read: a path, or a file name in labels/ (default: the only "
                      "JSON in labels/)",
        "side": "Crossing 1 crops to prepare: left, right or both (default both)",
        "position": "camera position LAT,LON in WGS84 degrees for --gauges (default 57.05,9.95)",
        "clock_offset": "hours subtracted from the video start time to get gauge time, for "
                        "--gauges (default 2)",
        "max_distance_km": "use only stations closer than this many km, for --gauges "
                           "(default 10)",
        "label_kind": "labels made from --gauges: binary (rain when more than 0 mm fell in "
                      "the minute) or mm (default binary)",
    }

    def __init__(self) -> None:
        self._options: dict[str, str] = {}

    def configure_prepare(self, options: dict[str, str]) -> None:
        """Check and keep the ``prepare`` options.

        Raises:
            UnknownNameError: ``side`` or ``label_kind`` is not a valid value.
            FieldHarnessError: ``position``, ``clock_offset`` or ``max_distance_km`` is not a
                valid number.
        """
        settings = _settings(options)
        del settings  # checked now, so that a bad value fails before any file is read
        self._options = dict(options)

    def read_source(self, source: Path, *, version: str | None = None) -> PreparedData:
        """Read the official download (videos and label JSON) under ``source``.

        Raises:
            FileNotFoundError: no split folder, video or label JSON was found.
            harness.errors.DataFormatError: a name, video, label JSON or gauge file is invalid.
        """
        from virada.prepare import read_virada_source

        return read_virada_source(Path(source), version=version,
                                  settings=_settings(self._options))

    def generate_sample(self, out_dir: Path, *, seed: int = 0) -> Path:
        """Write short synthetic videos in both naming schemes, their labels and gauge files."""
        from virada.sample import write_virada_sample

        return write_virada_sample(out_dir, seed=seed)


GAUGE_OPTIONS = ("position", "clock_offset", "max_distance_km", "label_kind")
"""Options that only apply when the labels are made from gauges."""


def _settings(options: dict[str, str]):  # noqa: ANN202 - the type is imported lazily
    from virada.prepare import PrepareSettings

    settings = PrepareSettings()
    unused = [name for name in GAUGE_OPTIONS if name in options and not options.get("gauges")]
    if unused:
        settings.notes.append("options " + ", ".join(unused) + " apply only with --gauges and "
                              "were ignored")
    if options.get("gauges"):
        settings.gauges = Path(options["gauges"]).expanduser()
    if options.get("label_file"):
        settings.label_file = options["label_file"]
    if "side" in options:
        if options["side"] not in SIDES:
            raise UnknownNameError("VIRADA side", options["side"], SIDES)
        settings.side = options["side"]
    if "label_kind" in options:
        if options["label_kind"] not in LABEL_KINDS:
            raise UnknownNameError("VIRADA label kind", options["label_kind"], LABEL_KINDS)
        settings.label_kind = options["label_kind"]
    if "position" in options:
        settings.position = _position(options["position"])
    if "clock_offset" in options:
        settings.clock_offset_hours = _number("clock_offset", options["clock_offset"],
                                              "a number of hours, e.g. 2")
    if "max_distance_km" in options:
        value = _number("max_distance_km", options["max_distance_km"],
                        "a distance in km above 0, e.g. 10")
        if value <= 0:
            raise FieldHarnessError(f"prepare option max_distance_km={value:g} must be above 0")
        settings.max_distance_km = value
    return settings


def _number(option: str, text: str, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise FieldHarnessError(f"prepare option {option}={text!r} is not valid; expected "
                                f"{expected}")
    return value


def _position(text: str) -> tuple[float, float]:
    parts = text.split(",")
    expected = "LAT,LON in degrees, e.g. 57.05,9.95"
    if len(parts) != 2:
        raise FieldHarnessError(f"prepare option position={text!r} is not valid; expected "
                                f"{expected}")
    try:
        lat = _number("position", parts[0], expected)
        lon = _number("position", parts[1], expected)
    except FieldHarnessError:
        raise FieldHarnessError(f"prepare option position={text!r} is not valid; expected "
                                f"{expected}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise FieldHarnessError(f"prepare option position={text!r} is out of range; expected "
                                f"{expected}")
    return lat, lon
