"""The C3D network with the fully convolutional head of the VIRADA rain detector.

The layers follow ``3DCNN/models/C3D.py`` of the authors' code (github.com/chrisbahnsen/aau-virada,
itself based on D. Abati's C3D port of Tran et al., ICCV 2015): eight 3 x 3 x 3 convolutions with
ReLU and five max-pooling layers, then a head of 2-D convolutions in place of C3D's fully
connected layers (4 x 4 conv 512 -> 4096, 1 x 1 4096 -> 4096, 1 x 1 4096 -> classes), with
dropout 0.5 after the first two. The log-softmax is taken at every spatial position and then
averaged over the positions. On a 16 x 112 x 112 clip the head has one position, so the network
is C3D. On a full frame it slides over the image ("FCN" mode), which is how the authors validate
and test.

This module imports torch; the command line does not import it.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.errors import FieldHarnessError

__all__ = ["C3D", "CLIP_LENGTHS", "MIN_FRAME_SIZE", "scaled_channels"]

CLIP_LENGTHS = range(16, 32)
"""Clip lengths (frames) that the pooling reduces to one time step, which the 2-D head needs."""

MIN_FRAME_SIZE = 96
"""Smallest frame height and width (pixels) that leaves the 4 x 4 head at least one position."""

BASE_CHANNELS = {"conv1": 64, "conv2": 128, "conv3": 256, "conv4": 512, "conv5": 512,
                 "fc6": 4096, "fc7": 4096}
"""Channel counts of the published network (``width = 1``)."""


def scaled_channels(width: float) -> dict[str, int]:
    """Return the channel count of every layer for a width factor (1.0 is the published one).

    Raises:
        FieldHarnessError: ``width`` is not a number in (0, 1].
    """
    valid = isinstance(width, int | float) and not isinstance(width, bool) and 0 < width <= 1
    if not valid:
        raise FieldHarnessError(
            f"invalid C3D width {width!r}; expected a number in (0, 1], where 1 is the published "
            "network")
    return {name: max(1, round(count * width)) for name, count in BASE_CHANNELS.items()}


def _conv3d(in_channels: int, out_channels: int) -> nn.Conv3d:
    return nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)


class C3D(nn.Module):
    """C3D with a fully convolutional head, returning per-clip log-probabilities.

    Input: float clips of shape ``[batch, 3, T, H, W]`` (RGB in [0, 1]) with ``T`` in
    :data:`CLIP_LENGTHS` and ``H``, ``W`` at least :data:`MIN_FRAME_SIZE`. Output: ``[batch,
    num_classes]``, the mean over the head's spatial positions of the log-softmax, as in the
    authors' code. Train it with ``nll_loss``.

    Args:
        num_classes: Output classes, at least 2 (the rain detector has 2: no rain, rain).
        width: Factor on every channel count. 1.0 is the published network (about 78 million
            parameters). Smaller values only make CPU smoke runs fast and are not the paper's
            model.
        dropout: Dropout probability after the first two head layers (0.5 in the authors' code).
        eval_batch_size: Largest number of clips per forward pass outside training. A large
            batch of full frames then needs activation memory for that many clips only.
            ``None`` computes the whole batch at once. The result does not depend on it.

    Raises:
        FieldHarnessError: An invalid ``num_classes``, ``width``, ``dropout`` or
            ``eval_batch_size``.
    """

    def __init__(self, num_classes: int = 2, *, width: float = 1.0, dropout: float = 0.5,
                 eval_batch_size: int | None = None):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise FieldHarnessError(
                f"invalid C3D num_classes {num_classes!r}; expected an integer >= 2 (the "
                "log-softmax head needs two or more classes)")
        if not 0 <= dropout < 1:
            raise FieldHarnessError(f"invalid C3D dropout {dropout!r}; expected a number in [0, 1)")
        if eval_batch_size is not None and (isinstance(eval_batch_size, bool)
                                            or not isinstance(eval_batch_size, int)
                                            or eval_batch_size < 1):
            raise FieldHarnessError(
                f"invalid C3D eval_batch_size {eval_batch_size!r}; expected an integer >= 1 or "
                "None")
        channels = scaled_channels(width)
        self.num_classes = num_classes
        self.width = float(width)
        self.eval_batch_size = eval_batch_size

        self.conv1 = _conv3d(3, channels["conv1"])
        self.pool1 = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.conv2 = _conv3d(channels["conv1"], channels["conv2"])
        self.pool2 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.conv3a = _conv3d(channels["conv2"], channels["conv3"])
        self.conv3b = _conv3d(channels["conv3"], channels["conv3"])
        self.pool3 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.conv4a = _conv3d(channels["conv3"], channels["conv4"])
        self.conv4b = _conv3d(channels["conv4"], channels["conv4"])
        self.pool4 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.conv5a = _conv3d(channels["conv4"], channels["conv5"])
        self.conv5b = _conv3d(channels["conv5"], channels["conv5"])
        # Padding 1 in height and width only: a 112 x 112 clip leaves 4 x 4 positions for fc6.
        self.pool5 = nn.MaxPool3d(kernel_size=2, stride=2, padding=(0, 1, 1))

        self.fc6 = nn.Conv2d(channels["conv5"], channels["fc6"], kernel_size=4)
        self.fc7 = nn.Conv2d(channels["fc6"], channels["fc7"], kernel_size=1)
        self.fc8 = nn.Conv2d(channels["fc7"], num_classes, kernel_size=1)
        self.dropout = nn.Dropout(p=dropout)
        self.relu = nn.ReLU()
        self.log_softmax = nn.LogSoftmax(dim=1)
        self.average = nn.AdaptiveAvgPool2d(1)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Return ``[batch, num_classes]`` log-probabilities for ``[batch, 3, T, H, W]`` clips.

        Raises:
            FieldHarnessError: An input of the wrong rank, channel count, length or frame size.
        """
        self._check_input(clips)
        chunk = self.eval_batch_size
        if self.training or chunk is None or clips.shape[0] <= chunk:
            return self._forward(clips)
        return torch.cat([self._forward(part) for part in clips.split(chunk)], dim=0)

    def _forward(self, clips: torch.Tensor) -> torch.Tensor:
        h = self.pool1(self.relu(self.conv1(clips)))
        h = self.pool2(self.relu(self.conv2(h)))
        h = self.pool3(self.relu(self.conv3b(self.relu(self.conv3a(h)))))
        h = self.pool4(self.relu(self.conv4b(self.relu(self.conv4a(h)))))
        h = self.pool5(self.relu(self.conv5b(self.relu(self.conv5a(h)))))

        h = h.squeeze(2)  # the time axis has length 1 here
        h = self.dropout(self.relu(self.fc6(h)))
        h = self.dropout(self.relu(self.fc7(h)))
        h = self.log_softmax(self.fc8(h))
        return self.average(h).flatten(1)

    def _check_input(self, clips: torch.Tensor) -> None:
        if clips.dim() != 5 or clips.shape[1] != 3:
            raise FieldHarnessError(
                f"C3D input has shape {tuple(clips.shape)}; expected [batch, 3, frames, height, "
                "width] RGB clips")
        length, height, width = clips.shape[2:]
        if length not in CLIP_LENGTHS:
            raise FieldHarnessError(
                f"C3D input clips have {length} frames; expected {CLIP_LENGTHS.start} to "
                f"{CLIP_LENGTHS.stop - 1} (the authors use 16)")
        if min(height, width) < MIN_FRAME_SIZE:
            raise FieldHarnessError(
                f"C3D input frames are {height} x {width} pixels; expected at least "
                f"{MIN_FRAME_SIZE} x {MIN_FRAME_SIZE} (training crops are 112 x 112)")

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, width={self.width:g}"
