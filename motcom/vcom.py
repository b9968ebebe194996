"""VCOM, the visual-similarity part of MOTCOM (Pedersen et al., ECCV 2022).

Each ground-truth box gets a 512-d feature from an ImageNet ResNet-18 (torchvision weights, ``fc``
replaced by identity). The network runs on the whole frame at full resolution, with everything
outside the box Gaussian-blurred (kernel 201, sigma 38) and the box region kept sharp.

For every annotated frame t whose frame t + 1 is annotated, and every object present in both,
the nearest feature among the objects of frame t + 1 is at distance d. The candidates are the
objects within (1 + r) * d, and the object scores 1 - [own identity among the candidates] /
(number of candidates). Scores are averaged over the objects of a frame, then over frames, and
VCOM is the mean over r = 0.01, 0.02, ..., 1.00. The steps follow
``trackeval/extract_vcom_features.py`` and
``trackeval/metrics/vcom.py`` of github.com/JoakimHaurum/MOTCOM (commit 1c2afb6):

- The frame is decoded by PIL and converted to RGB (torchvision's ``default_loader``), with no
  resizing. The blur is ``cv2.sepFilter2D(rgb_uint8, -1, k, k)`` with
  ``k = cv2.getGaussianKernel(201, 38)`` and OpenCV's default border (reflect-101), so the blurred
  frame is rounded back to uint8. Both frames are scaled to [0, 1] and normalised with the
  ImageNet mean and std. The sharp region is ``[int(top), int(top) + int(height))`` by
  ``[int(left), int(left) + int(width))`` of the 0-based clipped box.
- The reference blurs the same whole frame for every box and pastes the box into it, so
  blurring each frame once and pasting each of its boxes is exact. Features are computed in
  float32 with autocast and TF32 off.
- A composite differs from the blurred frame only inside its box. By default the network runs
  once on the blurred frame, and each box recomputes only the activations in the receptive field
  of its box, layer by layer. This is exact up to float32 rounding. On 1920x1080 frames with 20
  boxes it was 6 to 12 times faster than one full pass per box in two runs on a shared 2-core
  CPU (``benchmarks/bench_motcom_vcom.py``).

Known differences from the reference:

- The reference stops counting at the first annotated frame t whose frame t + 1 has no
  annotations, because its frame pointer no longer advances, so it skips all later frames. Ours
  counts every pair of consecutive annotated frames. ``stop_at_gap=True`` reproduces the
  reference.
- OpenCV is not a dependency. The blur is a float32 torch convolution with the same kernel,
  border and round-half-to-even conversion, but its summation order differs from OpenCV's
  SIMD code. A blurred pixel whose exact value lies within about 1e-4 of a rounding boundary
  can therefore differ by 1 from OpenCV's output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness import atomic
from harness.errors import DataFormatError, FieldHarnessError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

BLUR_KERNEL_SIZE = 201
BLUR_SIGMA = 38.0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FEATURE_DIM = 512
# The reference builds the ratios with this exact expression (100 values, 0.01 ... 1.00).
DISTANCE_RATIOS = np.arange(0.01, 1.0 + 0.01, 0.01)
RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
RESNET18_FILE = "resnet18-f37072fd.pth"
METHODS = ("incremental", "batched")
# Bump when the features or the cache layout change, so that old cache files are recomputed.
CACHE_FORMAT = 1


class VCOMUnavailable(FieldHarnessError):
    """VCOM cannot be computed: the frames or the ResNet-18 weights are missing."""


# ---------------------------------------------------------------------------------------------
# Blur


def gaussian_kernel(size: int = BLUR_KERNEL_SIZE, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Return the 1-D Gaussian kernel that ``cv2.getGaussianKernel(size, sigma)`` returns.

    The weights are ``exp(-(i - (size - 1) / 2) ** 2 / (2 * sigma ** 2))`` for ``i`` in
    ``0 .. size - 1``, divided by their sum, in float64.

    Raises:
        ValueError: ``size`` is not a positive odd number or ``sigma`` is not positive. OpenCV
            derives sigma from the size for ``sigma <= 0``, which VCOM never uses.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd number, got {size}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    weights = np.exp(-(offsets * offsets) / (2.0 * sigma * sigma))
    return weights / weights.sum()


def reflect101_indices(length: int, radius: int) -> np.ndarray:
    """Return the source index of each of ``length + 2 * radius`` padded positions.

    This is OpenCV's ``BORDER_REFLECT_101`` (``gfedcb|abcdefgh|gfedcba``), reflected again as
    often as needed when ``radius`` exceeds the length, as ``cv2.borderInterpolate`` does.
    """
    positions = np.arange(-radius, length + radius, dtype=np.int64)
    if length == 1:
        return np.zeros_like(positions)
    period = 2 * (length - 1)
    folded = np.mod(positions, period)
    return np.where(folded >= length, period - folded, folded)


def blur_image(image: torch.Tensor, *, size: int = BLUR_KERNEL_SIZE,
               sigma: float = BLUR_SIGMA, rounded: bool = True) -> torch.Tensor:
    """Blur a ``[C, H, W]`` uint8 image with a separable Gaussian and reflect-101 borders.

    Rows are filtered first, then columns, in float32, as ``cv2.sepFilter2D`` does for uint8
    input with a floating-point kernel.

    Args:
        image: uint8 tensor ``[C, H, W]`` on any device.
        size: kernel size (odd).
        sigma: Gaussian sigma in pixels.
        rounded: return uint8 rounded half to even and clipped to [0, 255] as OpenCV's
            ``saturate_cast`` does; otherwise return the float32 result before rounding.

    Returns:
        The blurred image, ``[C, H, W]``, on the device of ``image``.
    """
    import torch
    import torch.nn.functional as F

    channels, height, width = image.shape
    radius = size // 2
    kernel = torch.as_tensor(gaussian_kernel(size, sigma), dtype=torch.float32,
                             device=image.device)
    values = image.to(torch.float32).unsqueeze(0)

    columns = torch.as_tensor(reflect101_indices(width, radius), device=image.device)
    padded = values.index_select(3, columns)
    row_weight = kernel.view(1, 1, 1, size).expand(channels, 1, 1, size)
    values = F.conv2d(padded, row_weight, groups=channels)

    rows = torch.as_tensor(reflect101_indices(height, radius), device=image.device)
    padded = values.index_select(2, rows)
    column_weight = kernel.view(1, 1, size, 1).expand(channels, 1, size, 1)
    values = F.conv2d(padded, column_weight, groups=channels)[0]

    if not rounded:
        return values
    return torch.round(values).clamp_(0, 255).to(torch.uint8)


# ---------------------------------------------------------------------------------------------
# Model


def default_weights_path() -> Path:
    """Return where torchvision keeps the ImageNet ResNet-18 file: ``<torch hub>/checkpoints``."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / RESNET18_FILE


def _missing_weights_message(path: Path) -> str:
    return (f"VCOM needs the ImageNet ResNet-18 weights, and {str(path)!r} does not exist. "
            f"Download {RESNET18_URL} on a machine with internet access and copy it to "
            f"{str(path)!r} (torchvision's cache, under $TORCH_HOME/hub/checkpoints), or pass "
            "--weights PATH to a local copy of that file. Nothing is downloaded automatically.")


def _parse_weights(weights: str | os.PathLike[str] | None,
                   seed: int | None) -> tuple[str, int | Path]:
    """Return ``("random", seed)`` or ``("file", path)`` for the weights arguments."""
    if seed is not None:
        if weights is not None:
            raise FieldHarnessError(
                f"pass either weights ({str(weights)!r}) or seed ({seed}), not both; seed builds "
                "a randomly initialised ResNet-18")
        return "random", int(seed)
    if isinstance(weights, str) and weights.startswith("random:"):
        text = weights.partition(":")[2]
        try:
            return "random", int(text)
        except ValueError:
            raise FieldHarnessError(
                f"invalid weights {weights!r}; expected random:SEED with an integer seed, "
                "e.g. random:0, or the path of a ResNet-18 weights file") from None

    path = default_weights_path() if weights is None else Path(weights).expanduser()
    if not path.is_file():
        if weights is None:
            raise VCOMUnavailable(_missing_weights_message(path))
        raise VCOMUnavailable(
            f"ResNet-18 weights file {str(path)!r} not found; expected the torchvision file "
            f"{RESNET18_FILE} downloaded from {RESNET18_URL}")
    return "file", path


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_model(weights: str | os.PathLike[str] | None = None, *,
                seed: int | None = None) -> tuple[torch.nn.Module, str]:
    """Build the VCOM feature extractor: ResNet-18 with ``fc`` replaced by identity, in eval mode.

    Args:
        weights: a torchvision ResNet-18 weights file; ``None`` for torchvision's cached ImageNet
            file (see :func:`default_weights_path`); ``"random:SEED"`` for a randomly initialised
            network (tests and benchmarks).
        seed: same as ``weights="random:SEED"``.

    Returns:
        The model on the CPU and a string that identifies the weights (the file's SHA-256 or the
        seed), used as part of the feature cache key.

    Raises:
        VCOMUnavailable: the weights file is missing. Nothing is downloaded.
        FieldHarnessError: invalid arguments, or a file that does not fit ResNet-18.
    """
    import torch
    import torchvision

    from harness.training import load_weights

    kind, value = _parse_weights(weights, seed)
    if kind == "random":
        # Seed a private RNG state so that callers' random streams are left as they were.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(value))
            model = torchvision.models.resnet18(weights=None)
        identity = f"random:{value}"
    else:
        model = torchvision.models.resnet18(weights=None)
        load_weights(model, value)
        identity = f"sha256:{_file_sha256(Path(value))}"
    model.fc = torch.nn.Identity()
    return model.eval(), identity


@contextlib.contextmanager
def _float32_matmul() -> Iterator[None]:
    """Turn TF32 off for CUDA convolutions and matrix products, restoring the settings after."""
    import torch

    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


# ---------------------------------------------------------------------------------------------
# Features


def _gt_arrays(gt: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``frame``, ``id`` and ``boxes`` of ``gt`` as checked numpy arrays."""
    try:
        frames = np.asarray(gt.frame, dtype=np.int64)
        ids = np.asarray(gt.id, dtype=np.int64)
        boxes = np.asarray(gt.boxes, dtype=np.float64)
    except AttributeError as error:
        raise FieldHarnessError(
            f"ground truth of type {type(gt).__name__} has no {error.name!r} field; expected "
            "frame, id and boxes arrays as motcom.complexity prepares them") from None
    n = frames.shape[0]
    if frames.ndim != 1 or ids.shape != (n,) or boxes.shape != (n, 4):
        raise FieldHarnessError(
            f"ground truth arrays do not match: frame {frames.shape}, id {ids.shape}, boxes "
            f"{boxes.shape}; expected (n,), (n,) and (n, 4)")
    return frames, ids, boxes


def _frame_files(frames: np.ndarray, frame_paths: Mapping[int, Path]) -> dict[int, Path]:
    """Return the image of every annotated frame, or raise naming the first one missing."""
    files = {}
    for frame in np.unique(frames).tolist():
        path = frame_paths.get(frame)
        if path is None:
            raise VCOMUnavailable(
                f"no image for annotated frame {frame}; VCOM needs every annotated frame "
                f"({len(frame_paths)} frame paths were given)")
        path = Path(path)
        if not path.is_file():
            raise VCOMUnavailable(f"image of frame {frame} not found: {str(path)!r}")
        files[frame] = path
    return files


def _cache_key(files: Mapping[int, Path], frames: np.ndarray, ids: np.ndarray,
               boxes: np.ndarray, weights_identity: str) -> str:
    """Hash what the features depend on: frame files (name, size, mtime), boxes and weights."""
    digest = hashlib.sha256()
    header = {"format": CACHE_FORMAT, "blur": [BLUR_KERNEL_SIZE, BLUR_SIGMA],
              "weights": weights_identity}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for frame, path in sorted(files.items()):
        stat = path.stat()
        digest.update(f"{frame}\0{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    for array in (frames, ids, boxes):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _read_cache(path: Path, key: str, n: int) -> np.ndarray | None:
    """Return the cached features when ``path`` contains ``n`` features for ``key``, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            stored_key = str(data["key"])
            features = np.asarray(data["features"], dtype=np.float32)
    except (OSError, ValueError, KeyError) as error:
        logger.warning("ignoring unreadable VCOM feature cache %s: %s", path, error)
        return None
    if stored_key != key or features.shape != (n, FEATURE_DIM):
        logger.info("VCOM feature cache %s is stale; recomputing", path)
        return None
    logger.info("reusing VCOM features from %s", path)
    return features


def _write_cache(path: Path, key: str, frames: np.ndarray, ids: np.ndarray,
                 features: np.ndarray) -> None:
    with atomic.atomic_path(path, suffix=".npz") as tmp:
        with tmp.open("wb") as handle:
            np.savez(handle, key=np.array(key), frame=frames, id=ids, features=features)


def _load_frame(path: Path) -> np.ndarray:
    """Decode an image to ``[H, W, 3]`` RGB uint8 the way torchvision's ``default_loader`` does."""
    from PIL import Image, UnidentifiedImageError

    try:
        with path.open("rb") as handle, Image.open(handle) as image:
            return np.array(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise DataFormatError(f"cannot decode frame image {str(path)!r}: {error}") from None


def _normalise(image: torch.Tensor) -> torch.Tensor:
    """Scale a ``[3, H, W]`` uint8 image to [0, 1] and apply the ImageNet mean and std.

    The operations and their order are those of torchvision's ``ToTensor`` then ``Normalize``
    in float32, which the reference applies, so the values equal those transforms' bit for bit
    (the tests compare them).
    """
    import torch

    values = image.to(torch.float32).div(255)
    mean = torch.as_tensor(IMAGENET_MEAN, dtype=torch.float32, device=image.device)
    std = torch.as_tensor(IMAGENET_STD, dtype=torch.float32, device=image.device)
    return values.sub_(mean[:, None, None]).div_(std[:, None, None])


def _sharp_region(box: np.ndarray) -> tuple[slice, slice]:
    """Return the row and column slices kept sharp, truncating each value like ``int()``."""
    left, top, width, height = (int(value) for value in box)
    return slice(top, top + height), slice(left, left + width)


def extract_features(
    gt: Any,
    frame_paths: Mapping[int, Path],
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
    cache_path: Path | None = None,
    batch_size: int = 8,
    seed: int | None = None,
    progress: bool = True,
    method: str = "incremental",
) -> np.ndarray:
    """Compute the VCOM feature of every ground-truth box.

    Each frame is decoded and blurred once. With ``method="batched"``, every box of the frame
    gets a copy of the blurred frame with its own region pasted from the sharp frame, and the
    copies go through the network ``batch_size`` at a time. With ``method="incremental"``
    (default), the network runs once on the blurred frame and keeps every activation. Each box
    then recomputes only the activations inside the receptive field of its pasted region. Both
    give the full-frame features, up to float32 rounding of the different summation order.

    Args:
        gt: prepared ground truth with ``frame`` (1-based), ``id`` and ``boxes`` (0-based, clipped
            left, top, width, height) arrays, e.g. ``motcom.complexity.MotcomGroundTruth``.
        frame_paths: the image file of each annotated frame, by frame number.
        weights: see :func:`build_model`.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        cache_path: an ``.npz`` file for the features. The file is reused when its key matches
            the frame files' names, sizes and modification times, the boxes and the weights.
            Otherwise the features are computed and the file is replaced atomically.
        batch_size: boxes per network pass of the batched method. Each box needs its own
            full-resolution activations, an estimated 0.3 GB at 1920x1080 in float32.
        seed: see :func:`build_model`.
        progress: show a tqdm progress bar over boxes.
        method: ``"incremental"`` or ``"batched"``; see above. The cache key leaves it out.

    Returns:
        float32 features ``[n, 512]`` in the row order of ``gt``.

    Raises:
        VCOMUnavailable: a frame image or the weights file is missing.
        DataFormatError: a frame image cannot be decoded.
        FieldHarnessError: invalid arguments.
    """
    if batch_size < 1:
        raise FieldHarnessError(f"invalid batch_size {batch_size}; expected an integer >= 1")
    if method not in METHODS:
        raise FieldHarnessError(f"invalid method {method!r}; expected one of {', '.join(METHODS)}")
    frames, ids, boxes = _gt_arrays(gt)
    files = _frame_files(frames, frame_paths)
    model, weights_identity = build_model(weights, seed=seed)

    key = None
    if cache_path is not None:
        cache_path = Path(cache_path)
        key = _cache_key(files, frames, ids, boxes, weights_identity)
        cached = _read_cache(cache_path, key, frames.shape[0])
        if cached is not None:
            return cached

    features = _run_model(model, files, frames, boxes, device=device, batch_size=batch_size,
                          method=method, progress=progress)
    if cache_path is not None and key is not None:
        _write_cache(cache_path, key, frames, ids, features)
    return features


def _run_model(model: torch.nn.Module, files: Mapping[int, Path], frames: np.ndarray,
               boxes: np.ndarray, *, device: str, batch_size: int, method: str,
               progress: bool) -> np.ndarray:
    import torch
    from tqdm import tqdm

    from harness.training import resolve_device

    target = resolve_device(device)
    model = model.to(target)
    features = np.zeros((frames.shape[0], FEATURE_DIM), dtype=np.float32)
    order = np.argsort(frames, kind="stable")
    pending_rows: list[int] = []
    pending_images: list[torch.Tensor] = []

    def flush() -> None:
        batch = torch.stack(pending_images)
        output = model(batch).float().cpu().numpy()
        features[np.asarray(pending_rows)] = output
        bar.update(len(pending_rows))
        pending_rows.clear()
        pending_images.clear()

    autocast = torch.autocast(device_type=target.type, enabled=False)
    with (tqdm(total=frames.shape[0], desc="VCOM features", unit="box", disable=not progress)
          as bar, torch.inference_mode(), autocast, _float32_matmul()):
        start = 0
        while start < order.shape[0]:
            frame = int(frames[order[start]])
            stop = start + int(np.searchsorted(frames[order[start:]], frame, side="right"))
            image = torch.from_numpy(_load_frame(files[frame])).permute(2, 0, 1).to(target)
            sharp = _normalise(image)
            blurred = _normalise(blur_image(image))
            frame_rows = order[start:stop].tolist()
            start = stop
            if method == "incremental":
                features[frame_rows] = _patched_features(model, blurred, sharp,
                                                         boxes[frame_rows])
                bar.update(len(frame_rows))
                continue
            for row in frame_rows:
                rows, columns = _sharp_region(boxes[row])
                composite = blurred.clone()
                composite[:, rows, columns] = sharp[:, rows, columns]
                pending_rows.append(row)
                pending_images.append(composite)
                if len(pending_rows) == batch_size:
                    flush()
        if pending_rows:
            flush()
    return features


# ---------------------------------------------------------------------------------------------
# Exact shortcut: recompute only the activations that a box changes


class _Patch:
    """Activations of one composite that differ from the blurred frame's, at one layer.

    ``base`` is the blurred frame's activation ``[1, C, H, W]``. The composite's activation equals
    it outside rows ``top:bottom`` and columns ``left:right``, where it is ``values``.
    """

    def __init__(self, base, top: int, bottom: int, left: int, right: int, values) -> None:
        self.base = base
        self.top, self.bottom, self.left, self.right = top, bottom, left, right
        self.values = values

    @property
    def empty(self) -> bool:
        return self.bottom <= self.top or self.right <= self.left

    def window(self, top: int, bottom: int, left: int, right: int, fill: float):
        """Return the composite's activation on a window that may reach past the map's edges,
        with ``fill`` outside the map."""
        import torch.nn.functional as F

        height, width = self.base.shape[2:]
        inner = self.base[:, :, max(top, 0):min(bottom, height), max(left, 0):min(right, width)]
        padding = (max(-left, 0), max(right - width, 0), max(-top, 0), max(bottom - height, 0))
        window = F.pad(inner, padding, value=fill) if any(padding) else inner.clone()

        # Strided layers leave the last rows or columns of a map unread when the size does not
        # fit the stride, so the changed region can reach past the window.
        row_first, row_last = max(self.top, top), min(self.bottom, bottom)
        column_first, column_last = max(self.left, left), min(self.right, right)
        if row_first < row_last and column_first < column_last:
            window[:, :, row_first - top:row_last - top, column_first - left:column_last - left] = (
                self.values[:, :, row_first - self.top:row_last - self.top,
                            column_first - self.left:column_last - self.left])
        return window


def _output_range(start: int, stop: int, size: int, kernel: int, stride: int,
                  padding: int) -> tuple[int, int, int]:
    """Return the output cells ``[first, last)`` whose window meets input ``[start, stop)``, and
    the first input index of the window of ``first``."""
    outputs = (size + 2 * padding - kernel) // stride + 1
    first = max(0, -((kernel - 1 - start - padding) // stride))
    last = min(outputs, (stop - 1 + padding) // stride + 1)
    return first, last, first * stride - padding


class _FullEngine:
    """Runs ResNet-18 on a whole frame and records every intermediate activation in call order."""

    def __init__(self) -> None:
        self.records: list = []

    def _keep(self, value):
        self.records.append(value)
        return value

    def conv(self, module, x):
        return self._keep(module(x))

    def pool(self, module, x):
        return self._keep(module(x))

    def batch_norm(self, module, x):
        return self._keep(module(x))

    def relu(self, x):
        import torch.nn.functional as F

        return self._keep(F.relu(x))

    def add(self, a, b):
        return self._keep(a + b)

    def features(self, x):
        import torch

        return torch.flatten(x.mean(dim=(2, 3), keepdim=True), 1)


class _PatchEngine:
    """Replays the recorded full pass for one composite, computing only the changed cells.

    Each convolution or pooling runs on the smallest input window that contains the receptive
    field of every output cell whose inputs changed. Cells outside it keep the recorded value.
    """

    def __init__(self, records: list) -> None:
        self.records = records
        self.index = 0

    def _base(self):
        value = self.records[self.index]
        self.index += 1
        return value

    def _sliding(self, patch: _Patch, kernel: int, stride: int, padding: int, fill: float,
                 operation) -> _Patch:
        base = self._base()
        if patch.empty:
            return _Patch(base, 0, 0, 0, 0, None)
        height, width = patch.base.shape[2:]
        top, bottom, row_start = _output_range(patch.top, patch.bottom, height, kernel, stride,
                                               padding)
        left, right, column_start = _output_range(patch.left, patch.right, width, kernel, stride,
                                                  padding)
        row_stop = (bottom - 1) * stride - padding + kernel
        column_stop = (right - 1) * stride - padding + kernel
        window = patch.window(row_start, row_stop, column_start, column_stop, fill)
        return _Patch(base, top, bottom, left, right, operation(window))

    def conv(self, module, patch: _Patch) -> _Patch:
        import torch.nn.functional as F

        kernel, stride, padding = module.kernel_size[0], module.stride[0], module.padding[0]

        def convolve(window):
            return F.conv2d(window, module.weight, module.bias, stride)

        return self._sliding(patch, kernel, stride, padding, 0.0, convolve)

    def pool(self, module, patch: _Patch) -> _Patch:
        import torch.nn.functional as F

        def max_pool(window):
            return F.max_pool2d(window, module.kernel_size, module.stride)

        return self._sliding(patch, module.kernel_size, module.stride, module.padding,
                             float("-inf"), max_pool)

    def batch_norm(self, module, patch: _Patch) -> _Patch:
        values = None if patch.empty else module(patch.values)
        return _Patch(self._base(), patch.top, patch.bottom, patch.left, patch.right, values)

    def relu(self, patch: _Patch) -> _Patch:
        import torch.nn.functional as F

        values = None if patch.empty else F.relu(patch.values)
        return _Patch(self._base(), patch.top, patch.bottom, patch.left, patch.right, values)

    def add(self, a: _Patch, b: _Patch) -> _Patch:
        base = self._base()
        if a.empty or b.empty:
            changed = b if a.empty else a
            other = a if a.empty else b
            if changed.empty:
                return _Patch(base, 0, 0, 0, 0, None)
            values = (changed.values
                      + other.base[:, :, changed.top:changed.bottom, changed.left:changed.right])
            return _Patch(base, changed.top, changed.bottom, changed.left, changed.right, values)
        top, bottom = min(a.top, b.top), max(a.bottom, b.bottom)
        left, right = min(a.left, b.left), max(a.right, b.right)
        values = (a.window(top, bottom, left, right, 0.0)
                  + b.window(top, bottom, left, right, 0.0))
        return _Patch(base, top, bottom, left, right, values)

    def features(self, patch: _Patch):
        full = patch.window(0, patch.base.shape[2], 0, patch.base.shape[3], 0.0)
        return _FullEngine().features(full)


def _resnet_forward(model, engine, x):
    """Run torchvision's ResNet-18 (``fc`` = identity) step by step through ``engine``."""
    x = engine.conv(model.conv1, x)
    x = engine.batch_norm(model.bn1, x)
    x = engine.relu(x)
    x = engine.pool(model.maxpool, x)
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in layer:
            out = engine.conv(block.conv1, x)
            out = engine.batch_norm(block.bn1, out)
            out = engine.relu(out)
            out = engine.conv(block.conv2, out)
            out = engine.batch_norm(block.bn2, out)
            identity = x
            if block.downsample is not None:
                identity = engine.conv(block.downsample[0], x)
                identity = engine.batch_norm(block.downsample[1], identity)
            out = engine.add(out, identity)
            x = engine.relu(out)
    return engine.features(x)


def _patched_features(model, blurred, sharp, boxes: np.ndarray) -> np.ndarray:
    """Return the features of the composites of one frame's boxes from one full pass.

    The full pass keeps every activation, 1.4 GB at 1920x1080 in float32. Each box then
    runs small convolutions one box at a time.
    NOTE: not measured on a GPU, where many small kernels may make ``method="batched"`` faster.

    Args:
        model: ResNet-18 with ``fc`` = identity, on the device of the images.
        blurred: the normalised blurred frame ``[3, H, W]``.
        sharp: the normalised sharp frame ``[3, H, W]``.
        boxes: ``[k, 4]`` left, top, width, height.
    """
    full = _FullEngine()
    base_feature = _resnet_forward(model, full, blurred[None])
    height, width = blurred.shape[1:]
    output = []
    for box in boxes:
        rows, columns = _sharp_region(box)
        top, bottom, _ = rows.indices(height)
        left, right, _ = columns.indices(width)
        if bottom <= top or right <= left:
            output.append(base_feature)
            continue
        patch = _Patch(blurred[None], top, bottom, left, right,
                       sharp[None, :, top:bottom, left:right])
        output.append(_resnet_forward(model, _PatchEngine(full.records), patch))
    import torch

    return torch.cat(output).float().cpu().numpy()


# ---------------------------------------------------------------------------------------------
# Score


def frame_confusion(center_ids: np.ndarray, center_features: np.ndarray,
                    next_ids: np.ndarray, next_features: np.ndarray,
                    ratios: np.ndarray = DISTANCE_RATIOS) -> np.ndarray | None:
    """Return the mean confusion of one frame pair for each distance ratio, or None.

    Objects of the centre frame that are absent from the next frame are left out; None means
    that no object is in both frames.
    """
    from scipy.spatial.distance import cdist

    present = np.isin(center_ids, next_ids)
    if not present.any():
        return None
    distances = cdist(center_features[present], next_features, "euclidean")
    nearest = distances.min(axis=1, keepdims=True)
    # The reference's expression d + d * r, kept as written so that ties resolve alike.
    radius = nearest + nearest * ratios[None, :]
    candidates = distances[:, :, None] <= radius[:, None, :]
    same = center_ids[present][:, None] == next_ids[None, :]
    total = candidates.sum(axis=1)
    true = (candidates & same[:, :, None]).sum(axis=1)
    scores = 1.0 - true / total
    return scores.mean(axis=0)


def vcom_from_features(frames: np.ndarray, ids: np.ndarray, features: np.ndarray, *,
                       stop_at_gap: bool = False) -> float:
    """Compute VCOM from per-box features.

    Args:
        frames: frame number of each box, ``[n]``.
        ids: track id of each box, ``[n]``.
        features: ``[n, d]`` features.
        stop_at_gap: reproduce the reference's stop at the first annotated frame whose next frame
            has no annotations; by default every pair of consecutive annotated frames counts.

    Returns:
        VCOM in [0, 1], or NaN when no object appears in two consecutive counted frames.

    Raises:
        FieldHarnessError: the array shapes do not match.
    """
    frames = np.asarray(frames, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    features = np.asarray(features, dtype=np.float64)
    n = frames.shape[0]
    if frames.ndim != 1 or ids.shape != (n,) or features.ndim != 2 or features.shape[0] != n:
        raise FieldHarnessError(
            f"VCOM inputs do not match: frames {frames.shape}, ids {ids.shape}, features "
            f"{features.shape}; expected (n,), (n,) and (n, d)")

    order = np.argsort(frames, kind="stable")
    sorted_frames = frames[order]
    annotated, starts = np.unique(sorted_frames, return_index=True)
    ends = np.append(starts[1:], n)
    position = {int(frame): index for index, frame in enumerate(annotated)}

    per_frame = []
    for index, frame in enumerate(annotated.tolist()):
        following = position.get(frame + 1)
        if following is None:
            if stop_at_gap:
                break
            continue
        center = order[starts[index]:ends[index]]
        after = order[starts[following]:ends[following]]
        scores = frame_confusion(ids[center], features[center], ids[after], features[after])
        if scores is not None:
            per_frame.append(scores)

    if not per_frame:
        return math.nan
    per_ratio = np.mean(np.stack(per_frame), axis=0)
    return float(np.mean(per_ratio))


def compute_vcom(
    gt: Any,
    frame_paths: Mapping[int, Path],
    *,
    weights: str | os.PathLike[str] | None,
    device: str = "auto",
    cache_dir: Path | None = None,
    batch_size: int = 8,
    seed: int | None = None,
    progress: bool = True,
    name: str = "sequence",
    stop_at_gap: bool = False,
    method: str = "incremental",
) -> float:
    """Compute the VCOM of one sequence from its prepared ground truth and frame images.

    Args:
        gt: prepared ground truth; see :func:`extract_features`.
        frame_paths: the image file of each annotated frame, by frame number.
        weights: see :func:`build_model`.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        cache_dir: folder for the feature cache file ``<name>.vcom.npz``; None disables it.
        batch_size: boxes per network pass.
        seed: see :func:`build_model`.
        progress: show a progress bar.
        name: sequence name, used for the cache file name.
        stop_at_gap: see :func:`vcom_from_features`.
        method: see :func:`extract_features`.

    Returns:
        VCOM in [0, 1], or NaN when no object appears in two consecutive annotated frames.
    """
    cache_path = None if cache_dir is None else Path(cache_dir) / f"{name}.vcom.npz"
    features = extract_features(gt, frame_paths, weights=weights, device=device,
                                cache_path=cache_path, batch_size=batch_size, seed=seed,
                                progress=progress, method=method)
    frames, ids, _ = _gt_arrays(gt)
    return vcom_from_features(frames, ids, features, stop_at_gap=stop_at_gap)
