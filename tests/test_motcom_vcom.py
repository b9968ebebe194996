"""VCOM: the blur, the nearest-neighbour confusion score, features on rendered frames, the cache.

The network is a seeded randomly initialised ResNet-18 (``random:0``), so no weights are needed,
and the frames are tiny PNG files so that every full-resolution pass takes milliseconds.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from harness.errors import DataFormatError, FieldHarnessError
from motcom import vcom

WIDTH, HEIGHT = 64, 48


# ---------------------------------------------------------------------------------------------
# Direct implementations used as oracles


def opencv_border_index(position: int, length: int) -> int:
    """Reflect-101 as ``cv2.borderInterpolate`` writes it: reflect until inside."""
    if length == 1:
        return 0
    while position < 0 or position >= length:
        position = -position if position < 0 else 2 * length - 2 - position
    return position


def direct_blur(image: np.ndarray, size: int = 201, sigma: float = 38.0) -> np.ndarray:
    """Filter ``[H, W, C]`` rows then columns with explicit taps in float64."""
    offsets = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-offsets**2 / (2 * sigma**2))
    kernel /= kernel.sum()
    radius = size // 2
    height, width, _ = image.shape
    source = image.astype(np.float64)

    rows = np.zeros_like(source)
    for tap in range(size):
        columns = [opencv_border_index(x + tap - radius, width) for x in range(width)]
        rows += kernel[tap] * source[:, columns, :]
    result = np.zeros_like(source)
    for tap in range(size):
        lines = [opencv_border_index(y + tap - radius, height) for y in range(height)]
        result += kernel[tap] * rows[lines, :, :]
    return result


def reference_vcom(frames, ids, features, *, stop_at_gap: bool) -> float:
    """VCOM with the reference's loops: per ratio, a frame pointer, argsort and counting."""
    from scipy.spatial.distance import cdist

    lookup = sorted(set(frames.tolist()))
    values = []
    for ratio in np.arange(0.01, 1.0 + 0.01, 0.01):
        per_frame = []
        counter = 0
        for frame in range(1, max(lookup) + 1):
            if frame not in lookup:
                continue
            center = lookup[counter] if stop_at_gap else frame
            if center + 1 not in lookup:
                continue
            counter += 1
            current = np.where(frames == center)[0]
            following = np.where(frames == center + 1)[0]
            distances = cdist(features[current], features[following], "euclidean")
            scores = []
            for row, label in enumerate(ids[current]):
                if label not in ids[following]:
                    continue
                ranked = np.argsort(distances[row])
                ordered = distances[row][ranked]
                chosen = ranked[ordered <= ordered[0] + ordered[0] * ratio]
                true = sum(1 for index in chosen if ids[following][index] == label)
                scores.append(1 - true / len(chosen))
            if scores:
                per_frame.append(np.mean(scores))
        values.append(np.mean(per_frame))
    return float(np.mean(values))


# ---------------------------------------------------------------------------------------------
# Rendered sequences


def render(path: Path, rectangles, seed: int = 0) -> Path:
    """Write a ``WIDTH`` x ``HEIGHT`` PNG: fixed noise background and filled rectangles."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(60, 140, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    for left, top, width, height, colour in rectangles:
        pixels[top:top + height, left:left + width] = colour
    Image.fromarray(pixels).save(path)
    return path


def ground_truth(rows) -> SimpleNamespace:
    """Ground truth from ``(frame, id, left, top, width, height)`` rows."""
    table = np.asarray(rows, dtype=np.float64)
    return SimpleNamespace(frame=table[:, 0].astype(np.int64), id=table[:, 1].astype(np.int64),
                           boxes=table[:, 2:6], visibility=np.ones(len(table)))


def swap_sequence(folder: Path, *, swap: bool, frames: int = 4):
    """Two identical grey squares at fixed places; with ``swap`` their ids trade places each frame.

    Every frame is the same image, so the feature of a box depends only on its place, and with
    swapping each object's nearest neighbour in the next frame is the other object.
    """
    square = (200, 200, 200)
    paths = {}
    rows = []
    for frame in range(1, frames + 1):
        paths[frame] = render(folder / f"{frame:06d}.png",
                              [(6, 10, 12, 20, square), (40, 14, 12, 20, square)])
        first, second = (1, 2) if not swap or frame % 2 else (2, 1)
        rows.append((frame, first, 6, 10, 12, 20))
        rows.append((frame, second, 40, 14, 12, 20))
    return ground_truth(rows), paths


def moving_sequence(folder: Path):
    """Three coloured objects moving over five frames, fractional boxes, one at the border, frame
    4 without annotations, and object 3 absent from frame 2."""
    paths = {}
    rows = []
    for frame in range(1, 6):
        shift = 2 * frame
        objects = [(1, 3 + shift, 5, 10, 14, (220, 40, 40)),
                   (2, 30, 20 - frame, 12, 16, (40, 200, 60)),
                   (3, 50, 30, 14, 18, (30, 60, 210))]
        paths[frame] = render(folder / f"{frame:06d}.png",
                              [(left, top, width, height, colour)
                               for _, left, top, width, height, colour in objects], seed=frame)
        if frame == 4:
            continue
        for track, left, top, width, height, _ in objects:
            if track == 3 and frame == 2:
                continue
            rows.append((frame, track, left + 0.6, top + 0.3, width - 0.2, min(height + 0.7,
                         HEIGHT - top)))
    return ground_truth(rows), paths


# ---------------------------------------------------------------------------------------------
# Blur


def test_reflect101_matches_opencv_rule():
    for length in (1, 2, 3, 7, 48):
        expected = [opencv_border_index(p, length) for p in range(-100, length + 100)]
        assert vcom.reflect101_indices(length, 100).tolist() == expected


def test_gaussian_kernel_matches_definition():
    kernel = vcom.gaussian_kernel(201, 38.0)

    assert kernel.shape == (201,)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-15)
    assert np.array_equal(kernel, kernel[::-1])
    assert kernel[100] / kernel[100 + 38] == pytest.approx(math.exp(0.5), rel=1e-12)


def test_gaussian_kernel_rejects_even_size():
    with pytest.raises(ValueError, match="positive odd number, got 200"):
        vcom.gaussian_kernel(200, 38.0)


@pytest.mark.parametrize("shape", [(48, 64), (5, 3), (1, 9)])
def test_blur_matches_direct_filter(shape):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    expected = direct_blur(image)
    tensor = torch.from_numpy(image).permute(2, 0, 1)

    unrounded = vcom.blur_image(tensor, rounded=False).permute(1, 2, 0).numpy()
    rounded = vcom.blur_image(tensor).permute(1, 2, 0).numpy()

    assert np.abs(unrounded - expected).max() < 1e-3
    assert rounded.dtype == np.uint8
    assert np.abs(rounded.astype(int) - np.round(expected).astype(int)).max() <= 1
    assert np.mean(rounded == np.round(expected)) > 0.999


def test_blur_of_constant_image_is_unchanged():
    image = torch.full((3, 20, 30), 137, dtype=torch.uint8)

    assert torch.equal(vcom.blur_image(image), image)


# ---------------------------------------------------------------------------------------------
# Score from features


def test_score_identical_objects_half():
    frames = np.array([1, 1, 2, 2])
    ids = np.array([1, 2, 1, 2])
    features = np.ones((4, 3))

    assert vcom.vcom_from_features(frames, ids, features) == 0.5


def test_score_distinct_objects_zero():
    frames = np.array([1, 1, 2, 2, 3, 3])
    ids = np.array([1, 2, 1, 2, 1, 2])
    features = np.array([[0.0, 0], [10, 0], [0.1, 0], [10, 0.1], [0.2, 0], [10, 0.2]])

    assert vcom.vcom_from_features(frames, ids, features) == 0.0


def test_score_swapped_features_one():
    frames = np.array([1, 1, 2, 2])
    ids = np.array([1, 2, 1, 2])
    features = np.array([[0.0, 0], [5, 0], [5, 0], [0, 0]])

    assert vcom.vcom_from_features(frames, ids, features) == 1.0


def test_score_depends_on_ratio():
    # The other object is 1.255 times as far as the own one, so it is a candidate for the 75
    # ratios 0.26 ... 1.00, where the score is 1 - 1/2.
    frames = np.array([1, 2, 2])
    ids = np.array([1, 1, 2])
    features = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.255]])

    assert vcom.vcom_from_features(frames, ids, features) == pytest.approx(0.5 * 75 / 100,
                                                                           abs=1e-15)


def test_score_skips_objects_absent_next():
    frames = np.array([1, 1, 2])
    ids = np.array([1, 2, 1])
    features = np.zeros((3, 2))

    assert vcom.vcom_from_features(frames, ids, features) == 0.0


def test_score_gap_counted_by_default():
    # Frames 1-2: identical objects (0.5). Frame 3 is missing. Frames 4-5: distinct objects (0).
    frames = np.array([1, 1, 2, 2, 4, 4, 5, 5])
    ids = np.array([1, 2, 1, 2, 1, 2, 1, 2])
    features = np.array([[1.0, 1], [1, 1], [1, 1], [1, 1], [0, 0], [9, 9], [0, 0], [9, 9]])

    assert vcom.vcom_from_features(frames, ids, features) == 0.25
    assert vcom.vcom_from_features(frames, ids, features, stop_at_gap=True) == 0.5


def test_score_without_pairs_nan():
    assert math.isnan(vcom.vcom_from_features(np.array([1, 3]), np.array([1, 1]),
                                              np.zeros((2, 4))))


def test_score_rejects_mismatched_shapes():
    with pytest.raises(FieldHarnessError, match=r"features \(3, 2\)"):
        vcom.vcom_from_features(np.array([1, 2]), np.array([1, 1]), np.zeros((3, 2)))


@pytest.mark.parametrize("stop_at_gap", [False, True])
def test_score_matches_reference_loops(stop_at_gap):
    rng = np.random.default_rng(7)
    rows = []
    for frame in [1, 2, 3, 4, 6, 7, 8, 11, 12]:
        for track in rng.choice(8, size=rng.integers(2, 7), replace=False):
            rows.append((frame, track))
    frames = np.array([row[0] for row in rows])
    ids = np.array([row[1] for row in rows])
    # Features near a per-track centre, so that the confusion varies with the ratio.
    features = rng.normal(size=(8, 6))[ids] + 0.8 * rng.normal(size=(len(rows), 6))

    ours = vcom.vcom_from_features(frames, ids, features, stop_at_gap=stop_at_gap)
    expected = reference_vcom(frames, ids, features, stop_at_gap=stop_at_gap)

    assert 0.0 < ours < 1.0
    assert ours == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Features on rendered frames


def test_vcom_same_box_twice_half(tmp_path):
    rows = [(frame, track, 20, 10, 16, 20) for frame in (1, 2, 3) for track in (1, 2)]
    paths = {frame: render(tmp_path / f"{frame}.png", [(20, 10, 16, 20, (250, 250, 0))])
             for frame in (1, 2, 3)}

    result = vcom.compute_vcom(ground_truth(rows), paths, weights="random:0", device="cpu",
                               progress=False)

    assert result == 0.5


def test_vcom_swapped_lookalikes_one(tmp_path):
    gt, paths = swap_sequence(tmp_path, swap=True)

    assert vcom.compute_vcom(gt, paths, weights="random:0", device="cpu", progress=False) == 1.0


def test_vcom_unswapped_lookalikes_zero(tmp_path):
    gt, paths = swap_sequence(tmp_path, swap=False)

    assert vcom.compute_vcom(gt, paths, weights="random:0", device="cpu", progress=False) == 0.0


def slow_features(gt, paths, model) -> np.ndarray:
    """Per box: load, blur the whole frame (direct filter), PIL round trip, transforms, one pass."""
    from torchvision import transforms
    from torchvision.datasets.folder import default_loader

    transform = transforms.Compose([transforms.ToTensor(),
                                    transforms.Normalize(mean=[0.485, 0.456, 0.406],
                                                         std=[0.229, 0.224, 0.225])])
    features = []
    for frame, box in zip(gt.frame.tolist(), gt.boxes, strict=True):
        image = default_loader(str(paths[frame]))
        blurred = np.round(direct_blur(np.asarray(image))).clip(0, 255).astype(np.uint8)
        composite = transform(transforms.ToPILImage()(blurred))
        sharp = transform(image)
        left, top, width, height = (int(value) for value in box)
        composite[:, top:top + height, left:left + width] = sharp[:, top:top + height,
                                                                  left:left + width]
        with torch.inference_mode():
            features.append(model(composite[None])[0].numpy())
    return np.stack(features)


def test_features_match_per_box_path(tmp_path):
    gt, paths = moving_sequence(tmp_path)
    model, _ = vcom.build_model("random:3")

    fast = vcom.extract_features(gt, paths, weights="random:3", device="cpu", progress=False)
    batched = vcom.extract_features(gt, paths, weights="random:3", device="cpu", batch_size=4,
                                    method="batched", progress=False)
    slow = slow_features(gt, paths, model)

    assert fast.shape == (len(gt.frame), 512)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(batched, slow, rtol=1e-4, atol=1e-5)
    assert (vcom.vcom_from_features(gt.frame, gt.id, fast)
            == pytest.approx(vcom.vcom_from_features(gt.frame, gt.id, slow), abs=1e-9))


def test_incremental_matches_batched(tmp_path):
    # An odd frame size leaves the last rows and columns unread by strided layers.
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, size=(105, 139, 3), dtype=np.uint8)
    paths = {1: tmp_path / "000001.png"}
    Image.fromarray(pixels).save(paths[1])
    boxes = [(1, 1, 60, 40, 20, 40),  # interior
             (1, 2, 126.4, 98.2, 12.6, 6.8),  # reaches the last row and column
             (1, 3, 0, 0, 1, 1),  # one pixel in the corner
             (1, 4, 138, 104, 1, 1),  # the last pixel, which the first convolution reads
             (1, 5, 50, 30, 0.5, 30),  # no sharp column: the blurred frame's feature
             (1, 6, 10, 5, 120, 95)]  # most of the frame
    gt = ground_truth(boxes)

    incremental = vcom.extract_features(gt, paths, seed=2, device="cpu", progress=False)
    batched = vcom.extract_features(gt, paths, seed=2, device="cpu", method="batched",
                                    progress=False)

    np.testing.assert_allclose(incremental, batched, rtol=1e-4, atol=1e-5)
    assert np.abs(batched[0] - batched[4]).max() > 1e-3


def test_invalid_method_message(tmp_path):
    gt, paths = swap_sequence(tmp_path, swap=False, frames=2)

    with pytest.raises(FieldHarnessError, match="invalid method 'exact'; expected one of"):
        vcom.extract_features(gt, paths, seed=0, device="cpu", method="exact", progress=False)


def test_features_independent_of_batch_size(tmp_path):
    gt, paths = moving_sequence(tmp_path)

    single = vcom.extract_features(gt, paths, seed=3, device="cpu", batch_size=1,
                                   method="batched", progress=False)
    batched = vcom.extract_features(gt, paths, seed=3, device="cpu", batch_size=5,
                                    method="batched", progress=False)

    np.testing.assert_allclose(single, batched, rtol=1e-5, atol=1e-6)


def test_weights_file_equals_seeded_model(tmp_path):
    import torchvision

    torch.manual_seed(5)
    network = torchvision.models.resnet18(weights=None)
    torch.save(network.state_dict(), tmp_path / "resnet18.pth")
    gt, paths = swap_sequence(tmp_path, swap=False, frames=2)

    from_file = vcom.extract_features(gt, paths, weights=tmp_path / "resnet18.pth",
                                      device="cpu", progress=False)
    seeded = vcom.extract_features(gt, paths, seed=5, device="cpu", progress=False)

    np.testing.assert_array_equal(from_file, seeded)


# ---------------------------------------------------------------------------------------------
# Cache


def test_cache_reused_when_valid(tmp_path):
    gt, paths = swap_sequence(tmp_path, swap=False)
    cache = tmp_path / "cache"
    first = vcom.compute_vcom(gt, paths, weights="random:0", device="cpu", cache_dir=cache,
                              name="MOT17-02-SDP", progress=False)
    cache_file = cache / "MOT17-02-SDP.vcom.npz"
    assert cache_file.is_file()

    # Equal features make every object's candidates the two objects of the next frame, so a
    # second run that reads this file returns 0.5 instead of the computed 0.
    with np.load(cache_file) as data:
        stored = {name: data[name] for name in data.files}
    stored["features"] = np.ones_like(stored["features"])
    np.savez(cache_file, **stored)
    second = vcom.compute_vcom(gt, paths, weights="random:0", device="cpu", cache_dir=cache,
                               name="MOT17-02-SDP", progress=False)

    assert first == 0.0
    assert second == 0.5


def test_cache_invalidated_by_changes(tmp_path):
    gt, paths = swap_sequence(tmp_path, swap=False)
    cache = tmp_path / "cache"
    cache_file = cache / "sequence.vcom.npz"

    def run(**options) -> float:
        arguments = {"weights": "random:0"} | options
        return vcom.compute_vcom(gt, paths, device="cpu", cache_dir=cache, progress=False,
                                 **arguments)

    def poison() -> None:
        with np.load(cache_file) as data:
            stored = {name: data[name] for name in data.files}
        stored["features"] = np.ones_like(stored["features"])
        np.savez(cache_file, **stored)

    assert run() == 0.0
    poison()
    stat = paths[2].stat()
    os.utime(paths[2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert run() == 0.0

    poison()
    assert run(weights="random:1") == 0.0

    poison()
    gt.boxes[0, 0] += 1.0
    assert run() == 0.0

    cache_file.write_bytes(b"not an npz file")
    assert run() == 0.0
    with np.load(cache_file) as data:
        assert data["features"].shape == (len(gt.frame), 512)


# ---------------------------------------------------------------------------------------------
# Errors


def test_missing_default_weights_message(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    gt, paths = swap_sequence(tmp_path, swap=False, frames=2)
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"

    with pytest.raises(vcom.VCOMUnavailable) as raised:
        vcom.compute_vcom(gt, paths, weights=None, device="cpu", progress=False)

    message = str(raised.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert repr(str(expected)) in message
    assert "--weights PATH" in message


def test_missing_weights_file_message(tmp_path):
    gt, paths = swap_sequence(tmp_path, swap=False, frames=2)

    with pytest.raises(vcom.VCOMUnavailable, match=r"weights file .*absent\.pth' not found"):
        vcom.compute_vcom(gt, paths, weights=tmp_path / "absent.pth", device="cpu",
                          progress=False)


def test_invalid_random_weights_message():
    with pytest.raises(FieldHarnessError, match="invalid weights 'random:x'; expected random:SEED"):
        vcom.build_model("random:x")


def test_weights_and_seed_rejected():
    with pytest.raises(FieldHarnessError, match="either weights"):
        vcom.build_model("random:1", seed=2)


def test_missing_frame_image_message(tmp_path):
    gt, paths = swap_sequence(tmp_path, swap=False, frames=3)
    del paths[3]

    with pytest.raises(vcom.VCOMUnavailable, match="no image for annotated frame 3"):
        vcom.compute_vcom(gt, paths, weights="random:0", device="cpu", progress=False)

    paths[3] = tmp_path / "gone.png"
    with pytest.raises(vcom.VCOMUnavailable, match=r"image of frame 3 not found: .*gone\.png"):
        vcom.compute_vcom(gt, paths, weights="random:0", device="cpu", progress=False)


def test_undecodable_frame_message(tmp_path):
    gt, paths = swap_sequence(tmp_path, swap=False, frames=2)
    paths[2].write_bytes(b"no image here")

    with pytest.raises(DataFormatError, match=r"cannot decode frame image .*000002\.png"):
        vcom.compute_vcom(gt, paths, weights="random:0", device="cpu", progress=False)


def test_invalid_batch_size_message(tmp_path):
    gt, paths = swap_sequence(tmp_path, swap=False, frames=2)

    with pytest.raises(FieldHarnessError, match="invalid batch_size 0"):
        vcom.extract_features(gt, paths, seed=0, device="cpu", batch_size=0, progress=False)
