"""Tests of the 3D-ZeF camera model: calibration files, projection, refraction, triangulation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.errors import DataFormatError
from zef3d.camera import (
    Camera,
    load_cameras,
    read_intrinsic,
    read_references,
    triangulate,
)
from zef3d.sample import TANK_SIZE, WATER_DEPTH, _look_at

DISTORTION = np.array([-0.05, 0.01, 0.0005, -0.0003, 0.002])
TOP_K = np.array([[230.0, 0.0, 160.0], [0.0, 232.0, 90.0], [0.0, 0.0, 1.0]])
FRONT_K = np.array([[400.0, 0.0, 158.0], [0.0, 398.0, 91.0], [0.0, 0.0, 1.0]])
TOP_WORLD = np.array([[0.0, 0.0, WATER_DEPTH], [TANK_SIZE, 0.0, WATER_DEPTH],
                      [TANK_SIZE, TANK_SIZE, WATER_DEPTH], [0.0, TANK_SIZE, WATER_DEPTH]])
FRONT_WORLD = np.array([[0.0, 0.0, 0.0], [TANK_SIZE, 0.0, 0.0], [TANK_SIZE, 0.0, WATER_DEPTH],
                        [0.0, 0.0, WATER_DEPTH]])


def true_cameras() -> dict[str, Camera]:
    top_pose = _look_at((14.0, 15.0, 60.0), (0.05, 0.0, -1.0), (1.0, 0.0, 0.0))
    front_pose = _look_at((15.0, -45.0, 7.0), (0.0, 1.0, 0.03), (1.0, 0.0, 0.0))
    return {"top": Camera("top", TOP_K, DISTORTION, *top_pose),
            "front": Camera("front", FRONT_K, DISTORTION, *front_pose)}


def solved_cameras(refraction: bool = True) -> dict[str, Camera]:
    cameras = {}
    for view, world in (("top", TOP_WORLD), ("front", FRONT_WORLD)):
        truth = true_cameras()[view]
        cameras[view] = Camera.from_references(view, truth.K, truth.dist, truth.project(world),
                                               world, refraction=refraction)
    return cameras


def tank_points(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform([0.5, 0.5, 0.5], [TANK_SIZE - 0.5, TANK_SIZE - 0.5, WATER_DEPTH - 0.5],
                       size=(count, 3))


def write_calibration(folder: Path, prefix: str, camera: Camera, world: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    intrinsic = {"K": camera.K.tolist(), "Distortion": [camera.dist.tolist()]}
    (folder / f"{prefix}_intrinsic.json").write_text(json.dumps(intrinsic))
    entries = [{"camera": {"x": u, "y": v}, "world": {"x": x, "y": y, "z": z}}
               for (u, v), (x, y, z) in zip(camera.project(world).tolist(), world.tolist(),
                                            strict=True)]
    (folder / f"{prefix}_references.json").write_text(
        "/* corners of the aquarium\n   in pixels and centimetres */\n" + json.dumps(entries))


@pytest.fixture
def seq_dir(tmp_path: Path) -> Path:
    cameras = true_cameras()
    write_calibration(tmp_path, "camT", cameras["top"], TOP_WORLD)
    write_calibration(tmp_path, "camF", cameras["front"], FRONT_WORLD)
    return tmp_path


@pytest.mark.parametrize("refraction", [True, False])
def test_project_then_triangulate_round_trip(refraction):
    cameras = solved_cameras(refraction)
    points = tank_points(500)

    top_px = cameras["top"].project(points)
    front_px = cameras["front"].project(points)
    triangulated, errors = triangulate(cameras["top"], cameras["front"], top_px, front_px)

    assert np.abs(triangulated - points).max() < 1e-6
    assert errors.max() < 1e-6


def test_round_trip_without_distortion():
    cameras = {view: Camera(view, camera.K, np.zeros(5), camera.rvec, camera.tvec,
                            camera.interface)
               for view, camera in solved_cameras().items()}
    points = tank_points(50, seed=1)

    triangulated, _ = triangulate(cameras["top"], cameras["front"],
                                  cameras["top"].project(points),
                                  cameras["front"].project(points))

    assert np.abs(triangulated - points).max() < 1e-6


def test_references_recover_known_pose():
    truth = true_cameras()
    solved = solved_cameras()
    for view in ("top", "front"):
        assert np.allclose(solved[view].rvec, truth[view].rvec, atol=1e-6)
        assert np.allclose(solved[view].tvec, truth[view].tvec, atol=1e-5)
        assert np.allclose(solved[view].centre, truth[view].centre, atol=1e-5)


def test_interface_faces_camera():
    cameras = solved_cameras()
    top_interface = cameras["top"].interface
    front_interface = cameras["front"].interface

    assert np.allclose(top_interface.normal, [0.0, 0.0, 1.0])
    assert np.allclose(front_interface.normal, [0.0, -1.0, 0.0])
    assert top_interface.point[2] == WATER_DEPTH


def test_refraction_obeys_snell_law():
    camera = solved_cameras()["top"]
    point = np.array([[5.0, 22.0, 3.0]])
    pixel = camera.project(point)

    origin, direction = camera.rays(pixel)
    incoming = origin[0] - camera.centre
    incoming /= np.linalg.norm(incoming)
    normal = camera.interface.normal
    sine_air = np.linalg.norm(np.cross(incoming, normal))
    sine_water = np.linalg.norm(np.cross(direction[0], normal))
    to_point = point[0] - origin[0]
    off_ray = to_point - (to_point @ direction[0]) * direction[0]

    assert origin[0][2] == pytest.approx(WATER_DEPTH)
    assert sine_air == pytest.approx(1.33 * sine_water, rel=1e-9)
    assert np.linalg.norm(off_ray) < 1e-9
    assert not np.allclose(pixel, camera._project_direct(point), atol=0.5)


def test_point_on_camera_side_is_not_refracted():
    camera = solved_cameras()["top"]
    above_water = np.array([[10.0, 10.0, WATER_DEPTH + 5.0]])

    assert np.allclose(camera.project(above_water), camera._project_direct(above_water))


def test_load_cameras_official_names(seq_dir):
    cameras = load_cameras(seq_dir)
    truth = true_cameras()

    assert set(cameras) == {"top", "front"}
    assert np.allclose(cameras["top"].K, TOP_K)
    assert np.allclose(cameras["front"].dist, DISTORTION)
    assert np.allclose(cameras["front"].centre, truth["front"].centre, atol=1e-5)


def test_load_cameras_baseline_names(seq_dir):
    for old, new in (("camT", "cam1"), ("camF", "cam2")):
        for kind in ("intrinsic", "references"):
            (seq_dir / f"{old}_{kind}.json").rename(seq_dir / f"{new}_{kind}.json")

    cameras = load_cameras(seq_dir)

    assert np.allclose(cameras["top"].centre, true_cameras()["top"].centre, atol=1e-5)


def test_missing_calibration_file_named(seq_dir):
    (seq_dir / "camF_references.json").unlink()

    with pytest.raises(FileNotFoundError, match="camF_references.json"):
        load_cameras(seq_dir)


def test_missing_calibration_of_view_named(seq_dir):
    for path in seq_dir.glob("camT_*"):
        path.unlink()

    with pytest.raises(FileNotFoundError, match="camT_intrinsic.json or .*cam1_intrinsic.json"):
        load_cameras(seq_dir)


def test_malformed_json_names_file_and_line(seq_dir):
    path = seq_dir / "camT_intrinsic.json"
    path.write_text('{\n  "K": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],\n  "Distortion": [0, 0, 0, 0\n}')

    with pytest.raises(DataFormatError, match=r"camT_intrinsic.json:4: invalid JSON") as error:
        read_intrinsic(path)
    assert error.value.line == 4


def test_comment_keeps_line_numbers(seq_dir):
    path = seq_dir / "camF_references.json"
    path.write_text("/* line 1\n line 2 */\n[\n  {\"camera\": {\"x\": 1, \"y\": 2},\n}]")

    with pytest.raises(DataFormatError) as error:
        read_references(path)
    assert error.value.line == 5


def test_references_with_three_points_rejected(seq_dir):
    path = seq_dir / "camT_references.json"
    entries = json.loads(path.read_text().split("*/", 1)[1])
    path.write_text(json.dumps(entries[:3]))

    with pytest.raises(DataFormatError, match="3 point pairs; expected at least 4") as error:
        load_cameras(seq_dir)
    assert error.value.path == str(path)


def test_references_non_numeric_value_named(seq_dir):
    path = seq_dir / "camF_references.json"
    entries = json.loads(path.read_text().split("*/", 1)[1])
    entries[2]["world"]["z"] = "high"
    path.write_text(json.dumps(entries))

    with pytest.raises(DataFormatError, match=r"field '\[2\].world.z', value 'high'"):
        read_references(path)


def test_references_missing_value_named(seq_dir):
    path = seq_dir / "camF_references.json"
    entries = json.loads(path.read_text().split("*/", 1)[1])
    del entries[1]["camera"]["y"]
    path.write_text(json.dumps(entries))

    with pytest.raises(DataFormatError, match=r"value is missing \(field '\[1\].camera.y'\)"):
        read_references(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"K": [[1, 0], [0, 1]], "Distortion": [0, 0, 0, 0, 0]}, "K is not a 3 x 3 matrix"),
        ({"K": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "Distortion": [0, 0, 0]},
         "Distortion has 3 coefficients"),
        ({"K": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}, "key 'Distortion' is missing"),
        ({"K": [[0, 0, 0], [0, 0, 0], [0, 0, 0]], "Distortion": [0, 0, 0, 0]},
         "K is not a camera matrix"),
        ({"K": [["a", 0, 0], [0, 1, 0], [0, 0, 1]], "Distortion": [0, 0, 0, 0]},
         "value is not a numeric array"),
        ([1, 2], "intrinsic file is not a JSON object"),
    ],
)
def test_invalid_intrinsic_rejected(tmp_path, content, message):
    path = tmp_path / "camT_intrinsic.json"
    path.write_text(json.dumps(content))

    with pytest.raises(DataFormatError, match=message) as error:
        read_intrinsic(path)
    assert error.value.path == str(path)


def test_from_references_needs_four_points():
    camera = true_cameras()["top"]

    with pytest.raises(ValueError, match="at least 4"):
        Camera.from_references("top", camera.K, camera.dist, np.zeros((3, 2)), np.zeros((3, 3)))


def test_from_references_degenerate_points():
    camera = true_cameras()["top"]

    with pytest.raises(ValueError, match="cv2.solvePnP failed"):
        Camera.from_references("top", camera.K, camera.dist, np.ones((4, 2)), np.zeros((4, 3)))


def test_triangulate_rejects_unpaired_points():
    cameras = solved_cameras()

    with pytest.raises(ValueError, match="2 top and 3 front points"):
        triangulate(cameras["top"], cameras["front"], np.zeros((2, 2)), np.zeros((3, 2)))


def test_sample_calibration_files_load(tmp_path):
    from zef3d.sample import write_zef_sample

    root = write_zef_sample(tmp_path, sequences=1, test_sequences=0, frames=3, fish=1)
    seq_dir = root / "3DZeF20" / "train" / "ZebraFish-01"
    copy = tmp_path / "copy"
    shutil.copytree(seq_dir, copy)

    cameras = load_cameras(copy)

    assert np.allclose(cameras["top"].K[0, 0], 225.0)
    assert cameras["front"].interface is not None
