"""The Bossu et al. rain-streak detector, as the VIRADA authors re-implemented it in C++.

Bossu, Hautière & Tarel, "Rain or snow detection in image sequences through use of a histogram
of orientation of streaks", IJCV 2011. The steps and constants below follow the authors' C++
(``Bossu/BossuRainGauge.cpp`` in ``chrisbahnsen/aau-virada``, commit ``8176bf0``):

1. MOG2 background subtraction (history 500, variance threshold 16, no shadow detection, the
   automatic learning rate). The first 500 frames only train the model and give no output.
2. A pixel is a rain candidate when it is foreground and its grey level exceeds the grey
   background image by more than ``c`` (OpenCV ``threshold`` with ``THRESH_BINARY``, so ``> c``).
3. 8-connected components of the candidates; blobs of ``minimumBlobSize`` to
   ``maximumBlobSize`` pixels (both inclusive) are kept.
4. Per blob, from the central second-order moments divided by the area: the orientation
   ``θ = atan2(2 μ11, μ02 − μ20) / 2 + π/2`` in (0, π], the major semi-axis ``a = √λ1`` and
   the uncertainty ``dθ = dm √((μ02 − μ20)² + 2 μ11²) / ((μ02 − μ20)² + 4 μ11²)`` (1 when the
   denominator is 0).
5. The histogram of orientation of streaks (HOS) has 180 bins at 0°, 1°, …, 179° (in radians).
   Each blob adds ``a`` times a normal density of mean θ and standard deviation dθ, without
   wrapping at π. The surface is the histogram sum.
6. EM of a Gaussian + uniform(0, π) mixture over the histogram, started from the bins above the
   histogram's median, for exactly ``emMaxIterations`` iterations.
7. Goodness of fit: the largest absolute difference between the histogram's cumulative sum and
   the mixture CDF at the bins. A NaN difference sets it to 1.
8. A constant-velocity Kalman filter smooths the mixture: 6 states, of which 3 are measured
   (mean, standard deviation, mixture proportion), process noise 0.01 I, measurement noise
   0.1 I and initial covariance I. It predicts and corrects only when the goodness of fit
   passes. Otherwise the last corrected values are output (zeros before the first correction).
9. Rain (EM) when GoF ≤ ``maxGoFDifference`` and the mixture proportion ≥
   ``minimumGaussianSurface``; rain (Kalman) likewise with the Kalman proportion. The rain
   intensity is surface × proportion.

A frame without kept blobs gives −1 for the seven mixture and Kalman values and 0 for the
intensities and detections, and leaves the Kalman filter untouched.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from harness.errors import FieldHarnessError

__all__ = [
    "BossuDetector",
    "BossuParameters",
    "FrameResult",
    "HISTOGRAM_BINS",
    "KalmanSmoother",
    "blob_moments",
    "candidate_mask",
    "goodness_of_fit",
    "fit_mixture",
    "orientation_histogram",
]

logger = logging.getLogger(__name__)

HISTOGRAM_BINS = np.arange(180, dtype=np.float64) * (math.pi / 180.0)
"""Centres of the 180 HOS bins, 0° to 179° in radians."""

_UNIFORM_DENSITY = 1.0 / math.pi
_DEFAULT_MEAN = math.pi / 2.0
_SQRT_TWO_PI = math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class BossuParameters:
    """Detector settings; the names in brackets are the C++ settings-file keys.

    ``dm``, ``max_gof_difference`` and ``minimum_gaussian_surface`` are 32-bit floats in the
    C++ struct, so the detector rounds them to float32 before comparing, as the C++ does.
    """

    c: int = 3
    """Minimum grey-level increase over the background, exclusive (``c``)."""
    minimum_blob_size: int = 4
    """Smallest kept blob, in pixels, inclusive (``minimumBlobSize``)."""
    maximum_blob_size: int = 50
    """Largest kept blob, in pixels, inclusive (``maximumBlobSize``)."""
    dm: float = 1.0
    """Scale of the orientation uncertainty (``dm``)."""
    max_gof_difference: float = 0.06
    """Largest goodness-of-fit distance that counts as a fit (``maxGoFDifference``)."""
    minimum_gaussian_surface: float = 0.35
    """Smallest Gaussian mixture proportion that counts as rain (``minimumGaussianSurface``)."""
    em_max_iterations: int = 100
    """EM iterations, always all of them (``emMaxIterations``)."""
    warm_up_frames: int = 500
    """Frames that only train the background model (fixed at 500 in the C++)."""
    history: int = 500
    """MOG2 history (fixed at 500 in the C++)."""
    var_threshold: float = 16.0
    """MOG2 variance threshold (fixed at 16 in the C++)."""

    def __post_init__(self) -> None:
        checks = (
            ("c", self.c >= 0, "an integer >= 0"),
            ("minimum_blob_size", self.minimum_blob_size >= 1, "an integer >= 1"),
            (
                "maximum_blob_size",
                self.maximum_blob_size >= self.minimum_blob_size,
                f"an integer >= minimum_blob_size ({self.minimum_blob_size})",
            ),
            ("dm", self.dm > 0, "a number > 0"),
            ("max_gof_difference", self.max_gof_difference > 0, "a number > 0"),
            ("minimum_gaussian_surface", self.minimum_gaussian_surface > 0, "a number > 0"),
            ("em_max_iterations", self.em_max_iterations >= 1, "an integer >= 1"),
            ("warm_up_frames", self.warm_up_frames >= 1, "an integer >= 1"),
            ("history", self.history >= 1, "an integer >= 1"),
            ("var_threshold", self.var_threshold > 0, "a number > 0"),
        )
        for name, valid, expected in checks:
            if not valid:
                raise FieldHarnessError(
                    f"invalid Bossu parameter {name}={getattr(self, name)!r}; expected {expected}"
                )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> BossuParameters:
        """Build parameters from a config mapping, ignoring keys that are not parameters."""
        names = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})

    def as_dict(self) -> dict[str, Any]:
        """Return the parameters as a plain dict (for run records)."""
        return asdict(self)


@dataclass(frozen=True)
class FrameResult:
    """One row of the per-frame output (the columns of the official ``_Results.csv``)."""

    frame: int
    """1-based frame number (``Frame#``); the 0-based frame index is ``frame - 1``."""
    gauss_mean: float
    gauss_std: float
    gauss_mix_prop: float
    goodness_of_fit: float
    kalman_mean: float
    kalman_std: float
    kalman_mix_prop: float
    rain_intensity: float
    kalman_rain_intensity: float
    em_rain: bool
    kalman_rain: bool
    blobs: int = 0
    """Kept blobs in the frame (not written to the CSV)."""


def candidate_mask(
    gray_frame: np.ndarray, gray_background: np.ndarray, foreground: np.ndarray, c: int
) -> np.ndarray:
    """Return the rain-candidate mask: foreground pixels more than ``c`` grey levels brighter.

    The C++ subtracts 8-bit images with saturation, so a darker pixel gives 0, never a negative.
    """
    difference = gray_frame.astype(np.int16) - gray_background.astype(np.int16)
    return (foreground != 0) & (difference > c)


def blob_moments(
    mask: np.ndarray, minimum_size: int, maximum_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Find the 8-connected blobs of ``mask`` within the size limits and their moments.

    Args:
        mask: Boolean candidate mask, HxW.
        minimum_size: Smallest kept blob in pixels (inclusive).
        maximum_size: Largest kept blob in pixels (inclusive).

    Returns:
        ``(areas, mu20, mu02, mu11)`` of the kept blobs in label order, the central moments
        divided by the area (x is the column, y the row).
    """
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.int64)
    keep = np.zeros(count, dtype=bool)
    keep[1:] = (areas[1:] >= minimum_size) & (areas[1:] <= maximum_size)
    kept_labels = np.flatnonzero(keep)
    empty = np.zeros(0, dtype=np.float64)
    if kept_labels.size == 0:
        return np.zeros(0, dtype=np.int64), empty, empty, empty

    rows, cols = np.nonzero(keep[labels])
    pixel_labels = labels[rows, cols]
    # Renumber the kept labels 0 .. K-1 so that bincount works on a short array.
    index = np.full(count, -1, dtype=np.int64)
    index[kept_labels] = np.arange(kept_labels.size)
    blob = index[pixel_labels]
    size = kept_labels.size

    x = cols.astype(np.float64)
    y = rows.astype(np.float64)
    area = np.bincount(blob, minlength=size).astype(np.float64)
    mean_x = np.bincount(blob, weights=x, minlength=size) / area
    mean_y = np.bincount(blob, weights=y, minlength=size) / area
    dx = x - mean_x[blob]
    dy = y - mean_y[blob]
    mu20 = np.bincount(blob, weights=dx * dx, minlength=size) / area
    mu02 = np.bincount(blob, weights=dy * dy, minlength=size) / area
    mu11 = np.bincount(blob, weights=dx * dy, minlength=size) / area
    return areas[kept_labels], mu20, mu02, mu11


def streak_geometry(
    mu20: np.ndarray, mu02: np.ndarray, mu11: np.ndarray, dm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the orientation θ in (0, π], major semi-axis and uncertainty dθ of each blob."""
    half_trace = (mu20 + mu02) / 2.0
    root = np.sqrt(((mu20 - mu02) / 2.0) ** 2 + mu11**2)
    # The C++ takes |sqrt(lambda1)| of the larger eigenvalue of [[mu20, mu11], [mu11, mu02]].
    semi_axis = np.abs(np.sqrt(half_trace + root))
    orientation = 0.5 * np.arctan2(2.0 * mu11, mu02 - mu20) + math.pi / 2.0

    spread = mu02 - mu20
    numerator = np.sqrt(spread**2 + 2.0 * mu11**2) * float(np.float32(dm))
    denominator = spread**2 + 4.0 * mu11**2
    safe = np.where(denominator > 0, denominator, 1.0)
    uncertainty = np.where(denominator > 0, numerator / safe, 1.0)
    return orientation, semi_axis, uncertainty


def orientation_histogram(
    orientation: np.ndarray, semi_axis: np.ndarray, uncertainty: np.ndarray
) -> tuple[np.ndarray, float]:
    """Build the 180-bin HOS from blob orientations and return it with its surface (sum).

    Each blob adds ``a / (dθ √(2π)) · exp(−½ ((bin − θ) / dθ)²)`` to every bin.
    """
    if orientation.size == 0:
        return np.zeros(HISTOGRAM_BINS.size), 0.0
    with np.errstate(over="ignore", under="ignore"):
        z = (HISTOGRAM_BINS[None, :] - orientation[:, None]) / uncertainty[:, None]
        weights = semi_axis / (uncertainty * _SQRT_TWO_PI)
        histogram = (weights[:, None] * np.exp(-0.5 * z * z)).sum(axis=0)
    return histogram, float(histogram.sum())


def _gaussian_density(mean: float, std: float) -> np.ndarray:
    """Normal density at the bins; with std 0 it is 1 at a bin equal to the mean, else 0."""
    if std != 0:
        variance = std * std
        with np.errstate(under="ignore"):
            return np.exp(-((HISTOGRAM_BINS - mean) ** 2) / (2.0 * variance)) / math.sqrt(
                2.0 * math.pi * variance
            )
    return (HISTOGRAM_BINS == mean).astype(np.float64)


def _initial_mixture(histogram: np.ndarray, surface: float) -> tuple[float, float, float]:
    """Start values from the bins at or above the histogram's median (Bossu et al. 2009)."""
    median = float(np.median(histogram))
    excess = histogram - median
    above = excess >= 0.0
    weights = excess[above]
    angles = HISTOGRAM_BINS[above]
    total = float(weights.sum())

    mean = float((angles * weights).sum()) / total if total > 0 else _DEFAULT_MEAN
    proportion = total / surface if surface > 0 else 0.0
    if total > 0:
        std = math.sqrt(float(((angles - mean) ** 2 * weights).sum()) / total)
    else:
        std = 0.0
    return mean, std, proportion


def fit_mixture(
    histogram: np.ndarray, surface: float, iterations: int
) -> tuple[float, float, float]:
    """Fit a Gaussian + uniform(0, π) mixture to the HOS with EM.

    Returns:
        The Gaussian mean and standard deviation (radians) and its mixture proportion.
    """
    mean, std, proportion = _initial_mixture(histogram, surface)
    for _ in range(iterations):
        uniform_part = (1.0 - proportion) * _UNIFORM_DENSITY
        denominator = uniform_part + proportion * _gaussian_density(mean, std)
        safe = np.where(denominator > 0, denominator, 1.0)
        # z is the posterior of the uniform component at each bin.
        z = np.where(denominator > 0, uniform_part / safe, 0.0)

        gaussian_weight = (1.0 - z) * histogram
        weight_sum = float(gaussian_weight.sum())
        if weight_sum > 0:
            mean = float((gaussian_weight * HISTOGRAM_BINS).sum()) / weight_sum
            spread = float((gaussian_weight * (HISTOGRAM_BINS - mean) ** 2).sum())
            std = math.sqrt(spread / weight_sum)
        else:
            mean = _DEFAULT_MEAN
            std = 0.0
        proportion = weight_sum / surface if surface > 0 else 0.0
    return mean, std, proportion


def goodness_of_fit(
    histogram: np.ndarray, surface: float, mean: float, std: float, proportion: float
) -> float:
    """Return the Kolmogorov-Smirnov distance between the HOS and the fitted mixture.

    The empirical CDF at bin k is the histogram sum up to k over the surface. As in the C++,
    the uniform CDF there is (k + 1) / 180 and the normal CDF is taken at the bin's own angle.
    A NaN difference (e.g. a zero surface or a zero standard deviation at the mean) sets the
    distance to 1, after which only larger differences replace it.
    """
    from scipy.special import erf

    with np.errstate(divide="ignore", invalid="ignore"):
        empirical = np.cumsum(histogram / surface)
        normal = 0.5 * (1.0 + erf((HISTOGRAM_BINS - mean) / (std * math.sqrt(2.0))))
    uniform = (np.arange(1, 181) * (math.pi / 180.0)) * _UNIFORM_DENSITY
    combined = proportion * normal + (1.0 - proportion) * uniform
    difference = np.abs(combined - empirical)

    not_a_number = np.isnan(difference)
    if not not_a_number.any():
        return float(max(difference.max(), 0.0))
    last_nan = int(np.flatnonzero(not_a_number)[-1])
    tail = difference[last_nan + 1 :]
    return float(max(1.0, tail.max())) if tail.size else 1.0


class KalmanSmoother:
    """The constant-velocity Kalman filter over (mean, std, proportion), as OpenCV computes it.

    It equals ``cv2.KalmanFilter(6, 3, 0, CV_64F)`` with the C++ settings: zero initial state,
    initial error covariance I, process noise 0.01 I and measurement noise 0.1 I.
    """

    def __init__(self, process_noise: float = 0.01, measurement_noise: float = 0.1) -> None:
        self.transition = np.eye(6)
        self.transition[0:3, 3:6] = np.eye(3)
        self.measurement_matrix = np.eye(3, 6)
        self.process_noise = np.eye(6) * process_noise
        self.measurement_noise = np.eye(3) * measurement_noise
        self.state = np.zeros(6)
        self.covariance = np.eye(6)

    def update(self, measurement: np.ndarray) -> np.ndarray:
        """Predict one step, correct with ``measurement`` and return the corrected 3 values."""
        predicted_state = self.transition @ self.state
        predicted_covariance = (
            self.transition @ self.covariance @ self.transition.T + self.process_noise
        )
        h = self.measurement_matrix
        innovation_covariance = h @ predicted_covariance @ h.T + self.measurement_noise
        gain = np.linalg.solve(innovation_covariance, h @ predicted_covariance).T
        residual = np.asarray(measurement, dtype=np.float64) - h @ predicted_state
        self.state = predicted_state + gain @ residual
        self.covariance = predicted_covariance - gain @ h @ predicted_covariance
        return self.state[:3].copy()


class BossuDetector:
    """Run the detector frame by frame: feed RGB frames to :meth:`process` in video order."""

    def __init__(self, parameters: BossuParameters | None = None) -> None:
        import cv2
        import scipy.special  # noqa: F401  (loaded here so the first frame does not pay for it)

        self.parameters = parameters or BossuParameters()
        self._subtractor = cv2.createBackgroundSubtractorMOG2(
            history=self.parameters.history,
            varThreshold=self.parameters.var_threshold,
            detectShadows=False,
        )
        self._kalman = KalmanSmoother()
        self._kalman_values = (0.0, 0.0, 0.0)
        self._max_gof = float(np.float32(self.parameters.max_gof_difference))
        self._min_surface = float(np.float32(self.parameters.minimum_gaussian_surface))
        self.frames_seen = 0

    def process(self, frame: np.ndarray) -> FrameResult | None:
        """Process the next frame (HxWx3 RGB uint8); return ``None`` during the warm-up."""
        import cv2

        self._check_frame(frame)
        foreground = self._subtractor.apply(frame)
        background = self._subtractor.getBackgroundImage()
        self.frames_seen += 1
        if self.frames_seen <= self.parameters.warm_up_frames:
            return None

        gray_frame = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        gray_background = cv2.cvtColor(background, cv2.COLOR_RGB2GRAY)
        mask = candidate_mask(gray_frame, gray_background, foreground, self.parameters.c)
        areas, mu20, mu02, mu11 = blob_moments(
            mask, self.parameters.minimum_blob_size, self.parameters.maximum_blob_size
        )
        if areas.size == 0:
            return _no_blob_result(self.frames_seen)
        return self._analyse_blobs(mu20, mu02, mu11)

    def _check_frame(self, frame: np.ndarray) -> None:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise FieldHarnessError(
                f"the Bossu detector needs HxWx3 uint8 RGB frames, got shape {frame.shape} "
                f"and dtype {frame.dtype}"
            )

    def _analyse_blobs(self, mu20: np.ndarray, mu02: np.ndarray, mu11: np.ndarray) -> FrameResult:
        orientation, semi_axis, uncertainty = streak_geometry(mu20, mu02, mu11, self.parameters.dm)
        histogram, surface = orientation_histogram(orientation, semi_axis, uncertainty)
        mean, std, proportion = fit_mixture(histogram, surface, self.parameters.em_max_iterations)
        gof = goodness_of_fit(histogram, surface, mean, std, proportion)

        fits = gof <= self._max_gof
        if fits:
            corrected = self._kalman.update(np.array([mean, std, proportion]))
            self._kalman_values = (float(corrected[0]), float(corrected[1]), float(corrected[2]))
        kalman_mean, kalman_std, kalman_proportion = self._kalman_values

        return FrameResult(
            frame=self.frames_seen,
            gauss_mean=mean,
            gauss_std=std,
            gauss_mix_prop=proportion,
            goodness_of_fit=gof,
            kalman_mean=kalman_mean,
            kalman_std=kalman_std,
            kalman_mix_prop=kalman_proportion,
            rain_intensity=surface * proportion,
            kalman_rain_intensity=surface * kalman_proportion,
            em_rain=bool(fits and proportion >= self._min_surface),
            kalman_rain=bool(fits and kalman_proportion >= self._min_surface),
            blobs=int(mu20.size),
        )


def _no_blob_result(frame: int) -> FrameResult:
    return FrameResult(
        frame=frame,
        gauss_mean=-1.0,
        gauss_std=-1.0,
        gauss_mix_prop=-1.0,
        goodness_of_fit=-1.0,
        kalman_mean=-1.0,
        kalman_std=-1.0,
        kalman_mix_prop=-1.0,
        rain_intensity=0.0,
        kalman_rain_intensity=0.0,
        em_rain=False,
        kalman_rain=False,
        blobs=0,
    )
