"""The Faster R-CNN head detector of the 3D-ZeF baseline ("FRCNN-H"), trained with the runner.

The 3D-ZeF authors fine-tuned torchvision's ``fasterrcnn_resnet50_fpn`` following the torchvision
detection tutorial (``modules/fasterrcnn/train.py`` of ``mapeAAU/3D-ZeF``) on boxes annotated in
the frames. The 3D-ZeF20 ground truth gives a head point per view, so the training boxes here
are squares of ``head_box_size`` pixels centred on the ground-truth head points. One detector
is trained on the frames of both views.

Weights start from random initialisation (``weights=None``): nothing is downloaded. ``--weights
PATH`` loads a local checkpoint, the whole detector, or a backbone-and-FPN checkpoint whose box
predictor is left as initialised.

A detection's keypoint is the centre of its box. The front-view tracker's Mahalanobis gate
needs a covariance, so each box gets that of a uniform distribution over it (``width^2 / 12``,
``height^2 / 12``). torch and torchvision are imported inside the functions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zef3d.pipeline import PipelineSettings
from zef3d.pipeline.detection import Detections

__all__ = ["build_detector", "detect_heads", "head_boxes", "train_head_detector"]

logger = logging.getLogger(__name__)

_PREDICTOR_PREFIX = "roi_heads.box_predictor."


def head_boxes(points: np.ndarray, size: float, width: int, height: int) -> np.ndarray:
    """Return ``(N, 4)`` boxes (x1, y1, x2, y2) of side ``size`` centred on head points.

    Boxes are clipped to the image; points outside the image or NaN are left out.
    """
    points = np.asarray(points, np.float64).reshape(-1, 2)
    inside = (np.all(np.isfinite(points), axis=1) & (points[:, 0] >= 0)
              & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height))
    points = points[inside]
    half = size / 2.0
    boxes = np.concatenate([points - half, points + half], axis=1)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    return boxes


def build_detector(config: Mapping[str, Any]):
    """Return an untrained ``fasterrcnn_resnet50_fpn`` with two classes (background, head)."""
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    train_proposals = int(config["rpn_proposals_train"])
    test_proposals = int(config["rpn_proposals_test"])
    return fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=2,
        min_size=int(config["min_size"]), max_size=int(config["max_size"]),
        rpn_pre_nms_top_n_train=train_proposals, rpn_post_nms_top_n_train=train_proposals,
        rpn_pre_nms_top_n_test=test_proposals, rpn_post_nms_top_n_test=test_proposals,
        box_batch_size_per_image=int(config["box_batch_size_per_image"]),
        box_detections_per_img=int(config["max_detections"]))


def _trainer_module(detector):
    """Wrap the detector so that the runner's ``model(inputs)`` returns the summed loss."""
    import torch

    class DetectorLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.detector = detector

        def forward(self, inputs):
            targets = [{"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.int64,
                                                             device=boxes.device)}
                       for boxes in inputs["boxes"]]
            losses = self.detector(list(inputs["images"]), targets)
            return sum(losses.values())

    return DetectorLoss()


def _read_rgb_tensor(path: Path):
    import torch

    from zef3d.pipeline.background import read_frame

    image = read_frame(path)[:, :, ::-1]
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0


def _dataset(samples: Sequence[tuple[Path, np.ndarray]], box_size: float, flip: bool):
    import torch
    from torch.utils.data import Dataset

    class HeadBoxes(Dataset):
        """Frames with head boxes; with ``flip``, mirrored left-right with probability 0.5 (the
        official training's only augmentation)."""

        def __len__(self) -> int:
            return len(samples)

        def __getitem__(self, index: int) -> dict[str, Any]:
            path, points = samples[index]
            image = _read_rgb_tensor(path)
            width = image.shape[2]
            boxes = head_boxes(points, box_size, width, image.shape[1])
            if flip and float(torch.rand(())) < 0.5:
                image = image.flip(2)
                boxes = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0],
                                  boxes[:, 3]], axis=1)
            return {"image": image, "boxes": torch.as_tensor(boxes, dtype=torch.float32)}

    return HeadBoxes()


def _collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"inputs": {"images": [item["image"] for item in items],
                       "boxes": [item["boxes"] for item in items]}}


def _load_initial_weights(detector, path: Path) -> None:
    """Load a whole detector, a checkpoint of :func:`train_head_detector`, or all but the box
    predictor (e.g. a detector trained for other classes)."""
    from harness.errors import FieldHarnessError
    from harness.training import load_weights

    try:
        load_weights(detector, path)
        return
    except FieldHarnessError as mismatch:
        first_error = mismatch
    try:
        # fit() saves the training wrapper, whose detector keys start with "detector.".
        load_weights(detector, path, prefix="detector.")
        return
    except FieldHarnessError:
        pass
    try:
        load_weights(detector, path, skip=(_PREDICTOR_PREFIX,))
    except FieldHarnessError:
        raise first_error from None
    logger.warning("%s does not match the whole detector; loaded it without the box predictor "
                   "(%s*), which stays as initialised", path, _PREDICTOR_PREFIX)


def train_head_detector(samples: Sequence[tuple[Path, np.ndarray]], config: Mapping[str, Any],
                        output_dir: Path, *, weights: Path | None = None,
                        resume: str | None = None, seed: int = 0):
    """Fine-tune the head detector on ``(frame path, head points)`` samples and return it.

    Training runs through :func:`harness.training.fit` with the config's runner settings
    (``epochs``, ``batch_size``, ``lr``, ``device``, ...); ``epochs = 0`` skips training and
    uses ``weights`` as they are. Checkpoints, the loss history and its plot go to
    ``output_dir``.

    Raises:
        FieldHarnessError: ``epochs = 0`` without ``weights``, or the runner's errors.
    """
    from harness.config import require_torch
    from harness.errors import FieldHarnessError

    require_torch("the 3D-ZeF frcnn baseline", "torch", "torchvision")
    from harness.training import TrainSettings, fit, resolve_device, seed_everything

    epochs = int(config["epochs"])
    if epochs == 0 and weights is None:
        raise FieldHarnessError("epochs is 0 but no --weights were given; an untrained "
                                "detector finds nothing, so train it or pass --weights")
    seed_everything(seed)
    detector = build_detector(config)
    if weights is not None:
        _load_initial_weights(detector, Path(weights))
    if epochs == 0:
        return detector.to(resolve_device(str(config.get("device", "auto"))))

    runner = {key: value for key, value in config.items() if not isinstance(value, dict)}
    runner["seed"] = seed
    # Detection batches are lists of images of any size, so channels-last does not apply.
    runner["channels_last"] = False
    settings = TrainSettings.from_config(runner)
    module = _trainer_module(detector)
    data = _dataset(samples, float(config["head_box_size"]), bool(config["horizontal_flip"]))
    fit(module, data, None,
        lambda loss, batch: loss, settings, output_dir, resume=resume, input_key="inputs",
        collate_fn=_collate)
    return detector


def detect_heads(detector, frames: Sequence[Path], config: Mapping[str, Any],
                 settings: PipelineSettings, *, view: str, progress: bool = True) -> Detections:
    """Run the head detector over one view's frames and return its detections.

    At most ``2 * n_fish`` boxes per frame are kept (highest scores first) when ``n_fish`` is
    known, as the naive detector keeps at most that many blobs. The tracker later drops boxes
    scored below ``min_confidence``.
    """
    import torch
    from tqdm.auto import tqdm

    detector.eval()
    device = next(detector.parameters()).device
    batch_size = max(1, int(config.get("predict_batch_size", 4)))
    parts = []
    bar = tqdm(total=len(frames), desc=f"detect {view}", unit="frame", disable=not progress,
               leave=False)
    with torch.no_grad():
        for start in range(0, len(frames), batch_size):
            chunk = frames[start:start + batch_size]
            images = [_read_rgb_tensor(path).to(device) for path in chunk]
            outputs = detector(images)
            for offset, output in enumerate(outputs):
                parts.append(_to_detections(output, start + offset + 1, settings))
            bar.update(len(chunk))
    bar.close()
    return Detections.concatenate(parts)


def _to_detections(output: Mapping[str, Any], frame: int,
                   settings: PipelineSettings) -> Detections:
    boxes = output["boxes"].detach().cpu().numpy().astype(np.float64)
    scores = output["scores"].detach().cpu().numpy().astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    if settings.n_fish is not None:
        order = order[: 2 * settings.n_fish]
    boxes, scores = boxes[order], scores[order]
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2],
                       axis=1) if len(boxes) else np.zeros((0, 2))
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    covariances = np.zeros((len(boxes), 2, 2))
    covariances[:, 0, 0] = np.maximum(widths, 1.0) ** 2 / 12.0
    covariances[:, 1, 1] = np.maximum(heights, 1.0) ** 2 / 12.0
    return Detections(
        frames=np.full(len(boxes), frame, np.int64),
        centres=centres,
        points=np.repeat(centres[:, None, :], 3, axis=1),
        boxes=np.stack([boxes[:, 0], boxes[:, 1], widths, heights], axis=1)
        if len(boxes) else np.zeros((0, 4)),
        covariances=covariances,
        confidences=scores,
    )
