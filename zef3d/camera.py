"""The 3D-ZeF camera model: calibration files, projection with refraction, and triangulation.

The model follows the 3D-ZeF baseline (``modules/reconstruction/Camera.py`` and
``Triangulate.py`` in ``github.com/mapeAAU/3D-ZeF``):

- Intrinsics come from ``cam*_intrinsic.json`` (``K``, 3 x 3, and ``Distortion``, OpenCV order).
- Extrinsics come from ``cv2.solvePnP`` with ``SOLVEPNP_ITERATIVE`` on the image <-> world point
  pairs of ``cam*_references.json`` (the aquarium corners, world units centimetres).
- The reference points also define the refracting interface of the view, which is the water
  surface for the top camera and the front glass for the front camera. Air (index 1.0) is on
  the camera's side and water (index 1.33) on the other. The interface's normal is
  ``(p1 - p2) x (p3 - p2)`` of the reference points, turned to face the camera.
- Triangulation back-projects each 2D point into a ray (``cv2.undistortPoints``), refracts the
  ray where it meets the interface and returns the midpoint of the shortest segment between the
  two refracted rays.

Differences from the baseline: projection solves Snell's law by bisection where the baseline
takes a root of a quartic, so both give the same point up to rounding. Undistortion iterates to
convergence (the baseline uses OpenCV's default of a few iterations, which leaves errors of about
1e-6 px). The side of the interface that faces the camera is found from the vector from the first
reference point to the camera. The baseline uses the camera position vector itself, which agrees
when the world origin lies on the interface or on its far side from the camera. Triangulation
returns the mean reprojection error over the two views in pixels; the baseline returns the
distance between the two rays in centimetres.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import DataFormatError

AIR_INDEX = 1.0
WATER_INDEX = 1.33
"""Refractive indices the 3D-ZeF baseline uses (``Triangulate.py``)."""

DISTORTION_SIZES = (4, 5, 8, 12, 14)
"""Numbers of distortion coefficients OpenCV accepts."""

CALIBRATION_NAMES = {"top": ("camT", "cam1"), "front": ("camF", "cam2")}
"""File name prefixes per view: the MOTChallenge archive's first, the baseline code's second."""

_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_UNDISTORT_CRITERIA = (3, 100, 1e-15)  # TERM_CRITERIA_COUNT | TERM_CRITERIA_EPS, steps, epsilon
_BISECTION_STEPS = 100


@dataclass(frozen=True, eq=False)
class Interface:
    """A flat air-water interface: a point on it, its unit normal towards the camera, indices."""

    point: np.ndarray
    normal: np.ndarray
    inner_index: float = WATER_INDEX
    outer_index: float = AIR_INDEX


@dataclass(frozen=True, eq=False)
class Camera:
    """A calibrated view: pinhole with OpenCV distortion, pose, and optional refraction.

    ``rvec`` and ``tvec`` map world coordinates (centimetres) to camera coordinates as in
    ``cv2.projectPoints``. With an ``interface``, points on its far side are seen through it.
    """

    name: str
    K: np.ndarray
    dist: np.ndarray
    rvec: np.ndarray
    tvec: np.ndarray
    interface: Interface | None = None

    @property
    def rotation(self) -> np.ndarray:
        """Rotation matrix (3 x 3) from world to camera coordinates."""
        import cv2

        return cv2.Rodrigues(np.asarray(self.rvec, dtype=np.float64))[0]

    @property
    def centre(self) -> np.ndarray:
        """Camera centre in world coordinates (centimetres), ``-R^T t``."""
        return -self.rotation.T @ np.asarray(self.tvec, dtype=np.float64).reshape(3)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Project world points (N x 3, centimetres) into the image (N x 2, pixels).

        Points behind the interface are projected through their refraction point on it.
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if self.interface is not None:
            points = self._refraction_points(points)
        return self._project_direct(points)

    def _project_direct(self, points: np.ndarray) -> np.ndarray:
        import cv2

        if len(points) == 0:
            return np.zeros((0, 2))
        pixels, _ = cv2.projectPoints(points.reshape(-1, 1, 3), self.rvec, self.tvec,
                                      self.K, self.dist)
        return pixels.reshape(-1, 2)

    def _refraction_points(self, points: np.ndarray) -> np.ndarray:
        """Return where the light from each point crosses the interface towards the camera.

        In the plane that contains the camera, the point and the interface normal, the crossing
        lies at distance ``s`` from the camera's foot point along the interface, where
        ``sin(angle in air) = (n_water / n_air) * sin(angle in water)``. The difference of the two
        sides grows with ``s``, so bisection on ``[0, D]`` finds it. Points on the camera's side
        of the interface are returned unchanged.
        """
        interface = self.interface
        assert interface is not None
        centre = self.centre
        normal = interface.normal
        height = float((centre - interface.point) @ normal)
        depth = (interface.point - points) @ normal
        camera_foot = centre - height * normal
        point_foot = points + depth[:, None] * normal
        offset = point_foot - camera_foot
        distance = np.linalg.norm(offset, axis=1)
        direction = np.divide(offset, distance[:, None], out=np.zeros_like(offset),
                              where=distance[:, None] > 0)

        ratio = interface.inner_index / interface.outer_index
        low = np.zeros_like(distance)
        high = distance.copy()
        for _ in range(_BISECTION_STEPS):
            middle = 0.5 * (low + high)
            sine_air = middle / np.hypot(middle, height)
            sine_water = (distance - middle) / np.hypot(distance - middle, depth)
            too_far = sine_air > ratio * sine_water
            high = np.where(too_far, middle, high)
            low = np.where(too_far, low, middle)
        crossing = camera_foot + (0.5 * (low + high))[:, None] * direction
        behind = depth > 0
        return np.where(behind[:, None], crossing, points)

    def undistort(self, pixels: np.ndarray) -> np.ndarray:
        """Map pixels (N x 2) to normalised image coordinates (N x 2) without distortion."""
        import cv2

        pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        if len(pixels) == 0:
            return np.zeros((0, 2))
        normalised = cv2.undistortPoints(pixels.reshape(-1, 1, 2), self.K, self.dist,
                                         criteria=_UNDISTORT_CRITERIA)
        return normalised.reshape(-1, 2)

    def rays(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Back-project pixels into rays in world coordinates, refracted at the interface.

        Returns:
            Origins (N x 3) and unit directions (N x 3). Without an interface every origin is the
            camera centre. With one, the origin is where the ray meets the interface and the
            direction is the refracted one.
        """
        normalised = self.undistort(pixels)
        camera_rays = np.column_stack([normalised, np.ones(len(normalised))])
        directions = camera_rays @ self.rotation  # R^T applied to each row
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        origins = np.repeat(self.centre[None, :], len(directions), axis=0)
        if self.interface is None:
            return origins, directions

        interface = self.interface
        normal = interface.normal
        along = (interface.point - origins) @ normal / (directions @ normal)
        origins = origins + along[:, None] * directions
        ratio = interface.outer_index / interface.inner_index
        cos_in = -(directions @ normal)
        cos_out = np.sqrt(1.0 - ratio**2 * (1.0 - cos_in**2))
        refracted = ratio * directions + (ratio * cos_in - cos_out)[:, None] * normal
        refracted /= np.linalg.norm(refracted, axis=1, keepdims=True)
        return origins, refracted

    @classmethod
    def from_references(cls, name: str, K: np.ndarray, dist: np.ndarray,
                        image_points: np.ndarray, world_points: np.ndarray, *,
                        refraction: bool = True) -> Camera:
        """Solve the camera pose from four or more image <-> world point pairs.

        Uses ``cv2.solvePnP`` with ``SOLVEPNP_ITERATIVE``, as the 3D-ZeF baseline does. With
        ``refraction``, the first four world points also define the view's interface.

        Raises:
            ValueError: fewer than four pairs, or the pose could not be solved.
        """
        import cv2

        K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        dist = np.asarray(dist, dtype=np.float64).ravel()
        image_points = np.asarray(image_points, dtype=np.float64).reshape(-1, 2)
        world_points = np.asarray(world_points, dtype=np.float64).reshape(-1, 3)
        if len(image_points) < 4 or len(image_points) != len(world_points):
            raise ValueError(f"camera {name!r}: need at least 4 image <-> world point pairs, "
                             f"got {len(image_points)} image and {len(world_points)} world points")
        try:
            solved, rvec, tvec = cv2.solvePnP(world_points, image_points, K, dist,
                                              flags=cv2.SOLVEPNP_ITERATIVE)
        except cv2.error as error:
            reason = " ".join(error.err.replace(">", " ").split())
            raise ValueError(f"camera {name!r}: cv2.solvePnP failed: {reason}") from None
        if not solved:
            raise ValueError(f"camera {name!r}: cv2.solvePnP found no pose for the references")
        camera = cls(name, K, dist, rvec.reshape(3), tvec.reshape(3))
        if not refraction:
            return camera
        return cls(name, K, dist, camera.rvec, camera.tvec,
                   interface_from_points(world_points[:4], camera.centre))

    @classmethod
    def from_files(cls, name: str, intrinsic: Path, references: Path, *,
                   refraction: bool = True) -> Camera:
        """Load a camera from its intrinsic and references JSON files.

        Raises:
            FileNotFoundError: a file does not exist.
            harness.errors.DataFormatError: a file is not valid JSON or lacks a valid ``K``,
                ``Distortion`` or four or more ``{camera: {x, y}, world: {x, y, z}}`` entries.
        """
        K, dist = read_intrinsic(intrinsic)
        image_points, world_points = read_references(references)
        try:
            return cls.from_references(name, K, dist, image_points, world_points,
                                       refraction=refraction)
        except ValueError as error:
            raise DataFormatError(str(error), path=references) from None


def interface_from_points(points: np.ndarray, centre: np.ndarray) -> Interface:
    """Build the interface through four reference points, its normal facing ``centre``.

    Raises:
        ValueError: the points are collinear, so they span no plane.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    first_axis = points[1] - points[2]
    second_axis = points[3] - points[2]
    normal = np.cross(first_axis / np.linalg.norm(first_axis),
                      second_axis / np.linalg.norm(second_axis))
    length = np.linalg.norm(normal)
    if not np.isfinite(length) or length < 1e-9:
        raise ValueError("reference points 2, 3 and 4 are collinear; they span no interface")
    normal /= length
    if (centre - points[0]) @ normal < 0:
        normal = -normal
    return Interface(points[0].copy(), normal)


def load_cameras(seq_dir: Path, *, refraction: bool = True) -> dict[str, Camera]:
    """Load the top and front cameras of a sequence folder.

    Files are ``camT_intrinsic.json``/``camT_references.json`` (top) and ``camF_*`` (front), as
    in the MOTChallenge archive, or the baseline code's names ``cam1_*`` (top) and ``cam2_*``
    (front).

    Raises:
        FileNotFoundError: a view has neither name's pair of files.
        harness.errors.DataFormatError: a calibration file is invalid.
    """
    return {view: Camera.from_files(view, *calibration_files(seq_dir, view),
                                    refraction=refraction)
            for view in CALIBRATION_NAMES}


def calibration_files(seq_dir: Path, view: str) -> tuple[Path, Path]:
    """Return the intrinsic and references file of ``view`` in a sequence folder.

    Raises:
        FileNotFoundError: neither name's intrinsic file exists, or its references file is
            missing.
    """
    seq_dir = Path(seq_dir)
    tried = []
    for prefix in CALIBRATION_NAMES[view]:
        intrinsic = seq_dir / f"{prefix}_intrinsic.json"
        references = seq_dir / f"{prefix}_references.json"
        if intrinsic.is_file() or references.is_file():
            for path in (intrinsic, references):
                if not path.is_file():
                    raise FileNotFoundError(f"calibration file of the {view} view not found: "
                                            f"{path}")
            return intrinsic, references
        tried.append(str(intrinsic))
    raise FileNotFoundError(f"calibration of the {view} view not found; expected "
                            f"{' or '.join(tried)} and the matching *_references.json")


def _load_json(path: Path) -> object:
    """Parse a JSON file that may contain ``/* ... */`` comments (the official files do)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    # Keep the newlines of a comment so that error line numbers still match the file.
    text = _BLOCK_COMMENT.sub(lambda match: "\n" * match.group(0).count("\n") or " ", text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataFormatError(f"invalid JSON: {error.msg}", path=path, line=error.lineno,
                              expected="a JSON document (/* */ comments allowed)") from None


def read_intrinsic(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``K`` (3 x 3) and ``Distortion`` (OpenCV order) from an intrinsic JSON file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        harness.errors.DataFormatError: invalid JSON, a missing key, a ``K`` that is not a 3 x 3
            matrix of finite numbers, or a ``Distortion`` whose length OpenCV does not accept.
    """
    data = _load_json(path)
    if not isinstance(data, dict):
        raise DataFormatError("intrinsic file is not a JSON object", path=path,
                              value=type(data).__name__, expected='{"K": ..., "Distortion": ...}')
    for key in ("K", "Distortion"):
        if key not in data:
            raise DataFormatError(f"key {key!r} is missing", path=path,
                                  expected='keys "K" (3 x 3) and "Distortion"')
    K = _number_array(data["K"], path, "K")
    if K.shape != (3, 3):
        raise DataFormatError("K is not a 3 x 3 matrix", path=path, field="K",
                              value=data["K"], expected="[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.array_equal(K[2], [0.0, 0.0, 1.0]):
        raise DataFormatError("K is not a camera matrix", path=path, field="K", value=data["K"],
                              expected="fx > 0, fy > 0 and a last row of [0, 0, 1]")
    dist = _number_array(data["Distortion"], path, "Distortion").ravel()
    if dist.size not in DISTORTION_SIZES:
        raise DataFormatError(f"Distortion has {dist.size} coefficients", path=path,
                              field="Distortion", value=data["Distortion"],
                              expected=f"{', '.join(map(str, DISTORTION_SIZES))} coefficients "
                                       "in OpenCV order (k1, k2, p1, p2, k3, ...)")
    return K, dist


def read_references(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the image points (N x 2, pixels) and world points (N x 3, cm) of a references file.

    The file is a JSON list of ``{"camera": {"x", "y"}, "world": {"x", "y", "z"}}`` entries.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        harness.errors.DataFormatError: invalid JSON, fewer than four entries, or an entry
            without a numeric ``camera.x``/``camera.y``/``world.x``/``world.y``/``world.z``.
    """
    data = _load_json(path)
    if not isinstance(data, list):
        raise DataFormatError("references file is not a JSON list", path=path,
                              value=type(data).__name__,
                              expected='a list of {"camera": {x, y}, "world": {x, y, z}}')
    if len(data) < 4:
        raise DataFormatError(f"references file has {len(data)} point pairs", path=path,
                              expected="at least 4 image <-> world point pairs")
    image_points = np.zeros((len(data), 2))
    world_points = np.zeros((len(data), 3))
    for index, entry in enumerate(data):
        for group, axes, target in (("camera", "xy", image_points), ("world", "xyz", world_points)):
            for axis_index, axis in enumerate(axes):
                field = f"[{index}].{group}.{axis}"
                try:
                    value = entry[group][axis]
                except (KeyError, TypeError):
                    raise DataFormatError("value is missing", path=path, field=field,
                                          expected="a number") from None
                if isinstance(value, bool) or not isinstance(value, int | float) \
                        or not np.isfinite(value):
                    raise DataFormatError("value is not a finite number", path=path, field=field,
                                          value=value, expected="a number") from None
                target[index, axis_index] = value
    return image_points, world_points


def _number_array(value: object, path: Path, key: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataFormatError("value is not a numeric array", path=path, field=key,
                              value=value, expected="nested lists of numbers") from None
    if not np.all(np.isfinite(array)):
        raise DataFormatError("array has a non-finite value", path=path, field=key,
                              value=value, expected="finite numbers")
    return array


def triangulate(top: Camera, front: Camera, top_px: np.ndarray,
                front_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate pairs of 2D points (top view, front view) into 3D points.

    Each pixel is back-projected into a ray refracted at its view's interface. The 3D point is
    the midpoint of the shortest segment between the two rays, as in the 3D-ZeF baseline.

    Returns:
        Points (N x 3, centimetres) and their reprojection error (N,): the mean over the two
        views of the pixel distance between the given point and the projected 3D point. Parallel
        rays give NaN.
    """
    top_px = np.asarray(top_px, dtype=np.float64).reshape(-1, 2)
    front_px = np.asarray(front_px, dtype=np.float64).reshape(-1, 2)
    if len(top_px) != len(front_px):
        raise ValueError(f"got {len(top_px)} top and {len(front_px)} front points; "
                         "expected one pair per point")
    points, _ = closest_points(*top.rays(top_px), *front.rays(front_px))
    top_error = np.linalg.norm(top.project(points) - top_px, axis=1)
    front_error = np.linalg.norm(front.project(points) - front_px, axis=1)
    return points, 0.5 * (top_error + front_error)


def closest_points(origins_a: np.ndarray, directions_a: np.ndarray, origins_b: np.ndarray,
                   directions_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the midpoints (N x 3) and lengths (N,) of the shortest segments between ray pairs."""
    between = origins_b - origins_a
    ab = np.einsum("ij,ij->i", directions_a, directions_b)
    aa = np.einsum("ij,ij->i", directions_a, directions_a)
    bb = np.einsum("ij,ij->i", directions_b, directions_b)
    ac = np.einsum("ij,ij->i", directions_a, between)
    bc = np.einsum("ij,ij->i", directions_b, between)
    denominator = aa * bb - ab * ab
    with np.errstate(divide="ignore", invalid="ignore"):
        along_a = (ac * bb - ab * bc) / denominator
        along_b = (ab * ac - bc * aa) / denominator
    nearest_a = origins_a + along_a[:, None] * directions_a
    nearest_b = origins_b + along_b[:, None] * directions_b
    return 0.5 * (nearest_a + nearest_b), np.linalg.norm(nearest_a - nearest_b, axis=1)
