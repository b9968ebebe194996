"""The shared training runner: fit a model, predict with it and load its weights.

Every paper baseline trains through :func:`fit` and scores through :func:`predict`, so this module
contains no dataset-specific code. A dataset yields dicts such as
``{"image": tensor, "target": ...}``. The model is called as ``model(batch[input_key])`` and the
loss as ``loss_fn(outputs, batch)``.

:func:`fit` runs in one process or under ``torchrun`` with ``DistributedDataParallel``. It writes
``checkpoints/last.pt`` and ``checkpoints/best.pt`` (lowest validation loss), ``history.csv`` and
``loss.png`` into its output folder, each file atomically, and resumes from its own checkpoints.
On the CPU with ``workers=0``, a resumed run ends with the same weights, bit for bit, as an
uninterrupted one.

This module imports torch, so only training code imports it; ``import harness`` and the command
line do not.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import itertools
import logging
import math
import os
import pickle
import random
import shutil
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
)
from tqdm.auto import tqdm

from harness.atomic import atomic_path, write_text
from harness.errors import DataFormatError, FieldHarnessError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "DistributedContext",
    "FitResult",
    "TrainSettings",
    "checkpoint_settings",
    "fit",
    "init_distributed",
    "load_weights",
    "predict",
    "resolve_device",
    "seed_everything",
    "seed_worker",
]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "fieldharness.training"
"""Value of the ``format`` key that marks a checkpoint written by :func:`fit`."""

CHECKPOINT_FORMAT_VERSION = 1
"""Version of the checkpoint layout; raised whenever a key changes meaning."""

HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "seconds")

PRECISIONS = ("auto", "bf16", "fp16", "fp32")

# Settings that change the training trajectory. A resumed run whose values differ from the
# checkpoint's no longer matches an uninterrupted run, so fit warns about them.
_TRAJECTORY_SETTINGS = ("batch_size", "lr", "momentum", "weight_decay", "milestones", "gamma",
                        "seed", "max_steps_per_epoch", "precision")


# --- settings ----------------------------------------------------------------------------------


@dataclass
class TrainSettings:
    """Hyperparameters and runtime options of :func:`fit` and :func:`predict`.

    Attributes:
        epochs: Number of passes over the training data.
        batch_size: Samples per batch in each process; the global batch under ``torchrun`` is
            ``batch_size * world_size``.
        lr: Initial SGD learning rate.
        momentum: SGD momentum.
        weight_decay: SGD L2 penalty.
        milestones: Epochs (1-based, counted as completed epochs) after which the learning rate
            is multiplied by ``gamma``, as ``torch.optim.lr_scheduler.MultiStepLR`` does.
        gamma: Learning-rate factor applied at each milestone.
        workers: DataLoader worker processes per training process; 0 loads in the main process.
        device: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``auto`` (bf16 autocast on CUDA, fp32 on the CPU), ``bf16``, ``fp16`` (autocast
            with a gradient scaler, CUDA only) or ``fp32``.
        channels_last: ``auto`` (on for CUDA, off on the CPU), or a bool that forces it. When on,
            the model and 4-D input tensors use the channels-last memory format.
        seed: Seed of Python's, NumPy's and torch's generators and of the data order.
        max_steps_per_epoch: Maximum training (and validation) batches per epoch, for smoke runs;
            ``None`` runs full epochs.
        log_every: Training steps between two progress log lines.
        checkpoint_every: Epochs between two writes of ``last.pt``; the final epoch is always
            written.
        deterministic: Ask torch for deterministic algorithms (slower on CUDA).
    """

    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: Sequence[int] = ()
    gamma: float = 0.1
    workers: int = 0
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | str = "auto"
    seed: int = 0
    max_steps_per_epoch: int | None = None
    log_every: int = 50
    checkpoint_every: int = 1
    deterministic: bool = False

    def __post_init__(self) -> None:
        self.epochs = _check_int("epochs", self.epochs, minimum=1)
        self.batch_size = _check_int("batch_size", self.batch_size, minimum=1)
        self.lr = _check_float("lr", self.lr, positive=True)
        self.momentum = _check_float("momentum", self.momentum)
        self.weight_decay = _check_float("weight_decay", self.weight_decay)
        self.gamma = _check_float("gamma", self.gamma, positive=True)
        self.workers = _check_int("workers", self.workers, minimum=0)
        self.seed = _check_int("seed", self.seed, minimum=0)
        self.log_every = _check_int("log_every", self.log_every, minimum=1)
        self.checkpoint_every = _check_int("checkpoint_every", self.checkpoint_every, minimum=1)
        if self.max_steps_per_epoch is not None:
            self.max_steps_per_epoch = _check_int("max_steps_per_epoch",
                                                  self.max_steps_per_epoch, minimum=1)

        if isinstance(self.milestones, str | bytes) or not isinstance(self.milestones, Sequence):
            _invalid("milestones", self.milestones, "a list of epoch numbers >= 1")
        self.milestones = tuple(_check_int("milestones", m, minimum=1) for m in self.milestones)

        if not isinstance(self.device, str):
            _invalid("device", self.device, "auto, cpu, cuda or cuda:N")
        if self.precision not in PRECISIONS:
            _invalid("precision", self.precision, "one of " + ", ".join(PRECISIONS))
        if self.channels_last != "auto" and not isinstance(self.channels_last, bool):
            _invalid("channels_last", self.channels_last, "auto, true or false")
        if not isinstance(self.deterministic, bool):
            _invalid("deterministic", self.deterministic, "true or false")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TrainSettings:
        """Build settings from the top-level keys of ``config`` that name a field.

        Other keys (model or dataset options) are ignored.

        Raises:
            FieldHarnessError: A value of the wrong type or out of range.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in config.items() if key in names})

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a dict of plain values (``milestones`` as a list)."""
        values = dataclasses.asdict(self)
        values["milestones"] = list(self.milestones)
        return values


def _invalid(name: str, value: Any, expected: str) -> None:
    raise FieldHarnessError(f"invalid training setting {name}={value!r}; expected {expected}")


def _check_int(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        _invalid(name, value, f"an integer >= {minimum}")
    return int(value)


def _check_float(name: str, value: Any, *, positive: bool = False) -> float:
    valid = isinstance(value, int | float | np.floating) and not isinstance(value, bool)
    valid = valid and math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not valid:
        _invalid(name, value, "a number > 0" if positive else "a number >= 0")
    return float(value)


# --- devices, seeds and processes --------------------------------------------------------------


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a device name into a ``torch.device``.

    Args:
        name: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` (the current GPU) or
            ``cuda:N``.

    Raises:
        FieldHarnessError: CUDA requested where it is not available, a GPU index beyond the
            visible GPUs, or an unknown device name.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")

    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise FieldHarnessError(
                f"device {name!r} requested but CUDA is not available on this machine; "
                "use --device cpu")
        index_text = name.partition(":")[2]
        if not index_text:
            return torch.device("cuda", torch.cuda.current_device())
        count = torch.cuda.device_count()
        if not index_text.isdigit() or int(index_text) >= count:
            raise FieldHarnessError(
                f"invalid device {name!r}; this machine has {count} visible GPU(s), so expected "
                f"cuda:0 to cuda:{count - 1}")
        return torch.device("cuda", int(index_text))

    raise FieldHarnessError(f"invalid device {name!r}; expected auto, cpu, cuda or cuda:N")


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every GPU).

    DataLoader workers are seeded separately: :func:`fit` passes :func:`seed_worker` as
    ``worker_init_fn`` and a ``torch.Generator`` reseeded at every epoch.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """Seed ``random`` and NumPy in a DataLoader worker from the worker's torch seed.

    torch gives every worker the seed ``base_seed + worker_id``, where the DataLoader draws
    ``base_seed`` from its generator, so the seeds repeat when the generator state repeats.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a (possibly single-process) run.

    Attributes:
        rank: Global rank, from ``RANK`` (0 outside ``torchrun``).
        world_size: Number of processes, from ``WORLD_SIZE`` (1 outside ``torchrun``).
        local_rank: Rank on this machine, from ``LOCAL_RANK``; selects the GPU.
        device: The device this process computes on.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the only process that writes files and logs progress."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """Whether the run has more than one process."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every process when a process group is initialised; otherwise do nothing."""
        if dist.is_available() and dist.is_initialized():
            dist.barrier()


def _environment_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise FieldHarnessError(
            f"invalid environment variable {name}={text!r}; expected an integer, as torchrun "
            "sets it") from None


def is_main_process() -> bool:
    """Return whether this process is rank 0 of a ``torchrun`` job, or runs alone."""
    return _environment_int("RANK", 0) == 0


def _process_device(name: str, local_rank: int, world_size: int) -> torch.device:
    device = resolve_device(name)
    if device.type == "cuda" and world_size > 1:
        if name.startswith("cuda:"):
            logger.warning("device %s is fixed by the settings, so every process of the %d-process "
                           "run uses the same GPU", name, world_size)
            return device
        return torch.device("cuda", local_rank)
    return device


def _context_from_environment(settings: TrainSettings) -> DistributedContext:
    world_size = _environment_int("WORLD_SIZE", 1)
    rank = _environment_int("RANK", 0)
    local_rank = _environment_int("LOCAL_RANK", 0)
    device = _process_device(settings.device, local_rank, world_size)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank,
                              device=device)


_group_generation = 0
"""Process groups this process has created; each one's store keys get their own prefix."""


def _group_store(context: DistributedContext) -> dist.Store:
    """Return torchrun's rendezvous store under a prefix new to this process group.

    A run may train several times (pretraining, then fine-tuning), and each ``fit`` creates and
    destroys its own group. torch names every new default group alike after a destroy, so
    without a fresh prefix the second group would read the first one's connection keys from the
    store and fail to connect.
    """
    global _group_generation
    _group_generation += 1
    store, _, _ = next(dist.rendezvous("env://", rank=context.rank,
                                       world_size=context.world_size))
    return dist.PrefixStore(f"fieldharness/group{_group_generation}", store)


def init_distributed(settings: TrainSettings) -> DistributedContext:
    """Read torchrun's environment and, for more than one process, join the process group.

    ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` come from ``torchrun``; without them the run has
    one process and no group is created. The backend is ``nccl`` on CUDA and ``gloo`` on the CPU.
    A group that the caller initialised already is reused.

    Raises:
        FieldHarnessError: An invalid device or environment variable.
    """
    context = _context_from_environment(settings)
    if not context.is_distributed:
        return context

    if context.device.type == "cuda":
        torch.cuda.set_device(context.device)
    if not dist.is_initialized():
        backend = "nccl" if context.device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, store=_group_store(context),
                                rank=context.rank, world_size=context.world_size)
        logger.info("joined the %s process group as rank %d of %d", backend, context.rank,
                    context.world_size)
    return context


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


# --- batches -----------------------------------------------------------------------------------


def _to_device(value: Any, device: torch.device, channels_last: bool) -> Any:
    """Move the tensors in a (nested) batch to ``device``; other values stay as they are."""
    if isinstance(value, torch.Tensor):
        value = value.to(device, non_blocking=True)
        if channels_last and value.dim() == 4:
            value = value.contiguous(memory_format=torch.channels_last)
        return value
    if isinstance(value, Mapping):
        return {key: _to_device(item, device, channels_last) for key, item in value.items()}
    if isinstance(value, list | tuple) and any(isinstance(item, torch.Tensor) for item in value):
        return type(value)(_to_device(item, device, channels_last) for item in value)
    return value


def _model_input(batch: Any, input_key: str) -> Any:
    if not isinstance(batch, Mapping):
        raise FieldHarnessError(
            f"a batch is a {type(batch).__name__}; expected a dict, so the dataset's items must "
            "be dicts such as {'image': tensor, 'target': tensor}")
    if input_key not in batch:
        raise FieldHarnessError(
            f"a batch has no key {input_key!r}; its keys are {', '.join(map(str, batch))}, so "
            "set input_key to the key of the model input")
    return batch[input_key]


def _batch_size(inputs: Any) -> int:
    if isinstance(inputs, torch.Tensor):
        return int(inputs.shape[0]) if inputs.dim() else 1
    if isinstance(inputs, Mapping):
        return _batch_size(next(iter(inputs.values())))
    return len(inputs)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _resolve_precision(settings: TrainSettings, device: torch.device) -> str:
    precision = settings.precision
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise FieldHarnessError(
            f"precision 'fp16' needs a CUDA device but the device is {device}; use precision "
            "bf16 or fp32 on the CPU")
    return precision


def _resolve_channels_last(settings: TrainSettings, device: torch.device) -> bool:
    if settings.channels_last == "auto":
        return device.type == "cuda"
    return bool(settings.channels_last)


class _ShardSampler(Sampler[int]):
    """Every ``world_size``-th index starting at ``rank``, in order and without padding.

    ``DistributedSampler`` pads the shards to equal length by repeating samples, which would
    count those samples twice in the validation loss. These shards together hold each sample
    once, so the all-reduced loss equals the single-process loss.
    """

    def __init__(self, length: int, rank: int, world_size: int):
        self.indices = range(rank, length, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _loader(
    data: Dataset,
    settings: TrainSettings,
    sampler: Sampler,
    device: torch.device,
    collate_fn: Callable | None,
    generator: torch.Generator | None = None,
) -> DataLoader:
    # NOTE: workers are not persistent, so every epoch restarts them. That costs a few seconds
    # per epoch but reseeds them from the epoch's generator state, which resuming relies on.
    return DataLoader(
        data,
        batch_size=settings.batch_size,
        sampler=sampler,
        num_workers=settings.workers,
        collate_fn=collate_fn,
        pin_memory=device.type == "cuda",
        worker_init_fn=seed_worker if settings.workers else None,
        generator=generator,
    )


def _limited(loader: DataLoader, limit: int | None) -> tuple[Iterator[Any], int]:
    """Iterate over at most ``limit`` batches without loading the one after them."""
    total = len(loader) if limit is None else min(limit, len(loader))
    return itertools.islice(loader, total), total


def _all_reduce_sum(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    if context.is_distributed and dist.is_initialized():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


# --- checkpoints -------------------------------------------------------------------------------


@dataclass
class FitResult:
    """The files and numbers that :func:`fit` produced.

    Attributes:
        best_checkpoint: ``checkpoints/best.pt``, the epoch with the lowest validation loss, or
            the highest validation metric when ``fit`` had a ``val_metric`` (the last epoch
            without validation data).
        last_checkpoint: ``checkpoints/last.pt``, the latest saved epoch.
        best_epoch: 1-based epoch of ``best_checkpoint``; 0 when no epoch had a finite
            validation loss.
        best_val_loss: Validation loss of ``best_epoch``; ``None`` without validation data.
        best_val_metric: Validation metric of ``best_epoch``; ``None`` without ``val_metric``.
        history: One dict per epoch with the keys of ``history.csv``.
        files: Every file written, in the order checkpoints, history, plot.
    """

    best_checkpoint: Path
    last_checkpoint: Path
    best_epoch: int
    best_val_loss: float | None
    history: list[dict[str, Any]]
    files: list[Path]
    best_val_metric: float | None = None


def _save_atomic(state: Mapping[str, Any], target: Path) -> None:
    with atomic_path(target) as tmp:
        torch.save(dict(state), tmp)


def _rng_states() -> dict[str, Any]:
    name, keys, position, has_gauss, cached = np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {
        "python": random.getstate(),
        # Plain lists so that torch.load(weights_only=True) can read the NumPy state back.
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": list(cuda),
    }


def _restore_rng_states(states: Mapping[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(states["torch"].cpu())
    cuda = states.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([state.cpu() for state in cuda])


PICKLE_PROTOCOL_MARK = 0x80
"""First byte of a pickle of protocol 2 or later, as written by ``torch.save`` before 1.6."""


def _looks_like_torch_file(path: Path) -> bool:
    """Return whether ``path`` is a zip archive or a pickle: the two formats of ``torch.save``."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as handle:
        first = handle.read(1)
    return first == bytes([PICKLE_PROTOCOL_MARK])


def _first_line(error: BaseException, limit: int = 200) -> str:
    """Return ``Type: message`` of an error, cut to its first line and ``limit`` characters."""
    text = f"{type(error).__name__}: {error}".splitlines()[0]
    return text if len(text) <= limit else text[:limit] + "…"


def _read_checkpoint(path: Path, *, weights_only: bool | None = None) -> Any:
    """Load a file with ``torch.load`` on the CPU.

    Args:
        path: The checkpoint file.
        weights_only: ``True`` loads tensors and plain containers only. ``None`` tries that first
            and, for a file that also contains other Python objects (such as the hyperparameters of
            a PyTorch Lightning checkpoint), loads it fully with a warning. ``False`` loads fully.

    Raises:
        FieldHarnessError: The file does not exist, or ``weights_only=True`` and it contains other
            Python objects.
        DataFormatError: The file is not a PyTorch checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FieldHarnessError(f"checkpoint {str(path)!r} not found; expected a file written "
                                "by torch.save")

    if not _looks_like_torch_file(path):
        raise DataFormatError("not a PyTorch checkpoint", path=path,
                              expected="a file written by torch.save (a zip archive, or a pickle "
                                       "from PyTorch before 1.6)")

    safe = weights_only is not False
    try:
        return torch.load(path, map_location="cpu", weights_only=safe)
    except pickle.UnpicklingError as error:
        if not (safe and "Weights only load failed" in str(error)):
            raise DataFormatError(f"not a PyTorch checkpoint ({_first_line(error)})",
                                  path=path) from None
        if weights_only:
            raise FieldHarnessError(
                f"checkpoint {str(path)!r} contains Python objects other than tensors, so it "
                "cannot be loaded with weights_only=True; pass weights_only=None or False if "
                "you trust the file") from None
    except Exception as error:  # torch.load raises many types on a file that is not its format
        raise DataFormatError(
            f"not a PyTorch checkpoint (torch.load failed: {_first_line(error)})",
            path=path) from None

    warnings.warn(
        f"checkpoint {str(path)} contains Python objects other than tensors and was loaded with "
        "weights_only=False, which can run code from the file; load only checkpoints you trust",
        stacklevel=3)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise DataFormatError(
            f"not a PyTorch checkpoint (torch.load failed: {_first_line(error)})",
            path=path) from None


def _is_fit_checkpoint(obj: Any) -> bool:
    return isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT


def checkpoint_settings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the :class:`TrainSettings` values stored in a :func:`fit` checkpoint.

    Raises:
        FieldHarnessError: The file is missing.
        DataFormatError: The file is not a checkpoint written by :func:`fit`.
    """
    checkpoint = _read_checkpoint(Path(path), weights_only=True)
    if not _is_fit_checkpoint(checkpoint):
        raise DataFormatError("not a checkpoint written by harness.training.fit", path=path,
                              expected=f"a dict with format={CHECKPOINT_FORMAT!r}")
    return dict(checkpoint["settings"])


def _state_dict_of(obj: Any, path: Path) -> Mapping[str, torch.Tensor]:
    """Find the model state dict in a loaded checkpoint of any accepted layout."""
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if not isinstance(obj, Mapping):
        raise DataFormatError(f"the checkpoint contains a {type(obj).__name__}", path=path,
                              expected="a state_dict or a dict with a 'state_dict' or 'model' key")
    if _is_fit_checkpoint(obj):
        return obj["model"]
    if obj and all(isinstance(value, torch.Tensor) for value in obj.values()):
        return obj
    for key in ("state_dict", "model"):
        if key in obj:
            return _state_dict_of(obj[key], path)
    raise DataFormatError(
        f"the checkpoint has no model weights; its keys are {', '.join(map(str, list(obj)[:10]))}",
        path=path, expected="a state_dict or a dict with a 'state_dict' or 'model' key")


def _strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def _key_mismatch(model_keys: set[str], state_keys: set[str]) -> tuple[list[str], list[str]]:
    return sorted(model_keys - state_keys), sorted(state_keys - model_keys)


def _select_keys(
    state: Mapping[str, Any], model_keys: set[str], prefix: str | None, path: Path
) -> dict[str, Any]:
    if prefix is not None:
        selected = _strip_prefix(state, prefix)
        if not selected:
            first = ", ".join(list(state)[:5])
            raise FieldHarnessError(
                f"no key of checkpoint {str(path)!r} starts with prefix {prefix!r}; its first "
                f"keys are {first}")
        if len(selected) < len(state):
            logger.info("ignored %d keys of %s without the prefix %r",
                        len(state) - len(selected), path, prefix)
        return selected

    state = dict(state)
    if set(state) == model_keys:
        return state
    stripped = _strip_prefix(state, "module.")
    if len(stripped) == len(state) and set(stripped) == model_keys:
        return stripped
    return state


def load_weights(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    strict: bool = True,
    prefix: str | None = None,
    skip: Sequence[str] = (),
    weights_only: bool | None = None,
) -> None:
    """Load model weights from a local checkpoint into ``model`` (unwrapped from DDP).

    Accepted files: a :func:`fit` checkpoint, a bare ``state_dict``, a dict whose
    ``state_dict`` or ``model`` key contains one (PyTorch Lightning and torchvision reference
    scripts), or a pickled module.

    Args:
        model: The model to load into, in place.
        path: The checkpoint file. Nothing is downloaded.
        strict: Require the checkpoint keys to match the model's exactly.
        prefix: Keep only the keys that start with this prefix and remove it (e.g. ``"model."``
            for a Lightning module that stores the network as ``self.model``). ``None`` tries the
            keys as they are and then without a ``module.`` prefix that every key has (a model
            saved while wrapped in ``DistributedDataParallel``).
        skip: Key prefixes left out on both sides and left as initialised in ``model``, e.g.
            ``("fc.",)`` to start a network from ImageNet weights with a new classifier.
        weights_only: See :func:`torch.load`. ``None`` (default) first loads with
            ``weights_only=True`` and falls back to a full load with a warning for files that hold
            other Python objects.

    Raises:
        FieldHarnessError: The file is missing, no key has ``prefix``, or (with ``strict``) the
            keys differ. The message names the file and the first missing and unexpected keys.
        DataFormatError: The file is not a PyTorch checkpoint or contains no model weights.
    """
    path = Path(path)
    module = _unwrap(model)
    state = _state_dict_of(_read_checkpoint(path, weights_only=weights_only), path)
    model_keys = {key for key in module.state_dict() if not key.startswith(tuple(skip))}
    state = _select_keys(state, model_keys, prefix, path)
    state = {key: value for key, value in state.items() if not key.startswith(tuple(skip))}

    missing, unexpected = _key_mismatch(model_keys, set(state))
    if strict and (missing or unexpected):
        raise FieldHarnessError(
            f"checkpoint {str(path)!r} does not match the model: {len(missing)} missing keys "
            f"(first: {', '.join(missing[:5]) or 'none'}) and {len(unexpected)} unexpected keys "
            f"(first: {', '.join(unexpected[:5]) or 'none'}); check the architecture, or pass "
            "prefix= for keys with a prefix such as 'model.'")
    try:
        module.load_state_dict(state, strict=strict and not skip)
    except RuntimeError as error:
        details = " ".join(str(error).split())
        raise FieldHarnessError(
            f"checkpoint {str(path)!r} does not match the model: {details}") from None
    if missing or unexpected:
        logger.warning("loaded %s with %d missing and %d unexpected keys", path, len(missing),
                       len(unexpected))
    logger.info("loaded weights from %s", path)


# --- fit ---------------------------------------------------------------------------------------


@dataclass
class _Progress:
    """Training state that a checkpoint stores besides the model and optimizer."""

    epoch: int = 0
    best_val_loss: float | None = None
    best_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_metric: float | None = None


def _check_resume_settings(saved: Mapping[str, Any], settings: TrainSettings, path: Path,
                           epoch: int, world_size: int, saved_world_size: int) -> None:
    if settings.epochs < epoch:
        raise FieldHarnessError(
            f"checkpoint {str(path)!r} has finished {epoch} epochs but epochs={settings.epochs}; "
            f"set epochs >= {epoch} to continue, or start without --resume in a new output "
            "folder")

    current = settings.to_dict()
    changed = [f"{name} {saved.get(name)!r} -> {current[name]!r}"
               for name in _TRAJECTORY_SETTINGS if saved.get(name) != current[name]]
    if saved_world_size != world_size:
        changed.append(f"world_size {saved_world_size} -> {world_size}")
    if changed:
        warnings.warn(
            f"resuming from {path} with settings that differ from the checkpoint's "
            f"({'; '.join(changed)}); the run will not match an uninterrupted one",
            stacklevel=3)


def _resume(
    path: Path,
    settings: TrainSettings,
    context: DistributedContext,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
) -> _Progress:
    checkpoint = _read_checkpoint(path, weights_only=True)
    if not _is_fit_checkpoint(checkpoint):
        raise DataFormatError("cannot resume from a checkpoint not written by "
                              "harness.training.fit", path=path,
                              expected=f"a dict with format={CHECKPOINT_FORMAT!r}")
    version = checkpoint.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise DataFormatError("unsupported checkpoint format version", path=path,
                              value=version, expected=str(CHECKPOINT_FORMAT_VERSION))

    progress = _Progress(epoch=int(checkpoint["epoch"]),
                         best_val_loss=checkpoint["best_val_loss"],
                         best_epoch=int(checkpoint["best_epoch"]),
                         history=[dict(row) for row in checkpoint["history"]],
                         best_val_metric=checkpoint.get("best_val_metric"))
    _check_resume_settings(checkpoint["settings"], settings, path, progress.epoch,
                           context.world_size, int(checkpoint.get("world_size", 1)))

    try:
        module.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise FieldHarnessError(
            f"cannot resume from {str(path)!r}: the model or optimizer differs from the "
            f"checkpoint's ({error})") from None
    scheduler.load_state_dict(checkpoint["scheduler"])
    scaler.load_state_dict(checkpoint["scaler"])

    if context.is_distributed and not context.is_main:
        # The checkpoint contains rank 0's generator states, so the other ranks reseed.
        seed_everything(_epoch_seed(settings.seed, progress.epoch, context.rank))
    else:
        _restore_rng_states(checkpoint["rng"])
    logger.info("resumed from %s after epoch %d", path, progress.epoch)
    return progress


def _write_history(history: Sequence[Mapping[str, Any]], target: Path) -> None:
    buffer = io.StringIO()
    columns = HISTORY_COLUMNS
    if any(row.get("val_metric") is not None for row in history):
        columns = (*HISTORY_COLUMNS, "val_metric")
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({key: "" if row.get(key) is None else row[key] for key in columns})
    write_text(target, buffer.getvalue())


def _plot_history(history: Sequence[Mapping[str, Any]], target: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    epochs = [row["epoch"] for row in history]
    axes.plot(epochs, [row["train_loss"] for row in history], marker="o", label="train")
    if any(row.get("val_loss") is not None for row in history):
        val = [math.nan if row.get("val_loss") is None else row["val_loss"] for row in history]
        axes.plot(epochs, val, marker="o", label="validation")
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("loss")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png")


def _checkpoint_state(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    progress: _Progress,
    settings: TrainSettings,
    world_size: int,
) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "model": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": progress.epoch,
        "best_val_loss": progress.best_val_loss,
        "best_epoch": progress.best_epoch,
        "best_val_metric": progress.best_val_metric,
        "history": [dict(row) for row in progress.history],
        "rng": _rng_states(),
        "settings": settings.to_dict(),
        "world_size": world_size,
    }


@dataclass
class _Loop:
    """The model, optimiser and precision that each epoch uses besides the data."""

    model: nn.Module
    loss_fn: Callable[[Any, Mapping[str, Any]], torch.Tensor]
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    context: DistributedContext
    precision: str
    channels_last: bool
    input_key: str
    settings: TrainSettings
    progress_bar: bool
    val_metric: Callable[[Any, Mapping[str, Any]], torch.Tensor] | None = None


def _check_loss(loss: Any) -> None:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise FieldHarnessError(f"loss_fn returned {shape}; expected a scalar tensor")


def _train_epoch(loop: _Loop, loader: DataLoader, epoch: int) -> float:
    device = loop.context.device
    loop.model.train()
    batches, total = _limited(loader, loop.settings.max_steps_per_epoch)
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    bar = tqdm(batches, total=total, desc=f"epoch {epoch}/{loop.settings.epochs}",
               unit="batch", leave=False, disable=not (loop.progress_bar and loop.context.is_main))

    for step, batch in enumerate(bar, 1):
        batch = _to_device(batch, device, loop.channels_last)
        inputs = _model_input(batch, loop.input_key)
        with _autocast(device, loop.precision):
            outputs = loop.model(inputs)
            loss = loop.loss_fn(outputs, batch)
        _check_loss(loss)

        value = float(loss.detach())
        if not math.isfinite(value):
            raise FieldHarnessError(
                f"training loss is {value} at epoch {epoch}, step {step}; check the inputs and "
                "labels of that batch or lower the learning rate")

        loop.optimizer.zero_grad(set_to_none=True)
        loop.scaler.scale(loss.reshape(())).backward()
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()

        size = _batch_size(inputs)
        sums[0] += value * size
        sums[1] += size
        if step % loop.settings.log_every == 0 and loop.context.is_main:
            running = float(sums[0] / sums[1])
            bar.set_postfix(loss=f"{running:.4f}")
            logger.info("epoch %d step %d/%d: mean training loss %.6f", epoch, step, total,
                        running)

    sums = _all_reduce_sum(sums, loop.context)
    if sums[1] == 0:
        raise FieldHarnessError("the training data yielded no batches; expected a non-empty "
                                "dataset")
    return float(sums[0] / sums[1])


def _metric_values(values: Any, size: int) -> torch.Tensor:
    if not isinstance(values, torch.Tensor) or values.shape != (size,):
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise FieldHarnessError(f"val_metric returned {shape} for a batch of {size}; expected "
                                f"one score per sample, shape ({size},)")
    return values.detach().double()


def _validate(loop: _Loop, loader: DataLoader) -> tuple[float, float | None]:
    """Return the mean validation loss and, with ``val_metric``, the mean per-sample metric."""
    device = loop.context.device
    module = _unwrap(loop.model)
    module.eval()
    batches, _ = _limited(loader, loop.settings.max_steps_per_epoch)
    sums = torch.zeros(3, dtype=torch.float64, device=device)

    with torch.no_grad():
        for batch in batches:
            batch = _to_device(batch, device, loop.channels_last)
            inputs = _model_input(batch, loop.input_key)
            with _autocast(device, loop.precision):
                outputs = module(inputs)
                loss = loop.loss_fn(outputs, batch)
            _check_loss(loss)
            size = _batch_size(inputs)
            sums[0] += loss.detach().double().reshape(()) * size
            sums[1] += size
            if loop.val_metric is not None:
                sums[2] += _metric_values(loop.val_metric(outputs, batch), size).sum()

    sums = _all_reduce_sum(sums, loop.context)
    if sums[1] == 0:
        raise FieldHarnessError("the validation data yielded no batches; expected a non-empty "
                                "dataset, or pass val_data=None")
    metric = None if loop.val_metric is None else float(sums[2] / sums[1])
    return float(sums[0] / sums[1]), metric


def _configure_determinism(settings: TrainSettings, device: torch.device) -> None:
    if settings.deterministic:
        # cuBLAS needs this workspace setting for reproducible results (CUDA 10.2 and later).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def fit(
    model: nn.Module,
    train_data: Dataset,
    val_data: Dataset | None,
    loss_fn: Callable[[Any, Mapping[str, Any]], torch.Tensor],
    settings: TrainSettings,
    output_dir: str | os.PathLike[str],
    *,
    resume: str | os.PathLike[str] | None = None,
    input_key: str = "image",
    collate_fn: Callable | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    progress: bool = True,
    val_metric: Callable[[Any, Mapping[str, Any]], torch.Tensor] | None = None,
) -> FitResult:
    """Train ``model`` in place and write checkpoints, the loss history and a loss plot.

    Each step calls ``outputs = model(batch[input_key])`` and ``loss_fn(outputs, batch)``, with
    every tensor of the batch on the device (other values, such as lists of strings, unchanged).
    The validation loss is the mean over samples of the per-batch losses weighted by batch size.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in ``DistributedDataParallel``
    and the training data is split with ``DistributedSampler``. Each rank validates its own
    share of the validation set, and the sums are all-reduced, so every rank gets the same loss.
    Only rank 0 writes files. A process group that ``fit`` created is destroyed on return.

    ``fit`` seeds every generator with ``settings.seed`` (plus the rank) before training, so seed
    the model's initialisation yourself before building it (:func:`seed_everything`).

    Args:
        model: The model, on any device; it is moved to the settings' device.
        train_data: A map-style dataset of dicts, shuffled every epoch.
        val_data: A map-style dataset of dicts, or ``None`` to skip validation.
        loss_fn: ``loss_fn(outputs, batch)`` returning a scalar tensor.
        settings: The hyperparameters and runtime options.
        output_dir: The run folder, created when missing.
        resume: A checkpoint to continue from, or ``"last"`` for
            ``output_dir/checkpoints/last.pt``. Training continues at the epoch after it.
        input_key: The batch key whose value is the model input.
        collate_fn: Passed to the DataLoaders (default: torch's default collate).
        optimizer: Used instead of SGD(lr, momentum, weight_decay) over ``model.parameters()``.
        scheduler: Used instead of MultiStepLR(milestones, gamma); stepped once per epoch.
        progress: Show a tqdm bar per epoch on rank 0.
        val_metric: ``val_metric(outputs, batch)`` returning one score per sample (shape
            ``[batch]``, e.g. 1.0 where the top-1 prediction is right). Its mean over the
            validation set is logged as ``val_metric`` in the history, and ``best.pt`` is then
            the epoch with the highest value instead of the lowest validation loss.

    Returns:
        The checkpoint paths, the best epoch and its validation loss, the history and the files.

    Raises:
        FieldHarnessError: Invalid settings or device, a non-finite training loss (naming the
            epoch and step), a batch without ``input_key``, a missing resume checkpoint, or a
            resume with fewer epochs than the checkpoint finished.
        DataFormatError: A resume file that is not a :func:`fit` checkpoint.
    """
    output_dir = Path(output_dir)
    checkpoint_dir = output_dir / "checkpoints"
    last_path = checkpoint_dir / "last.pt"
    best_path = checkpoint_dir / "best.pt"
    resume_path = None
    if resume is not None:
        resume_path = last_path if str(resume) == "last" else Path(resume)
        if not resume_path.is_file():
            raise FieldHarnessError(
                f"cannot resume: checkpoint {str(resume_path)!r} not found; run without --resume "
                "to start a new run")

    owns_group = _environment_int("WORLD_SIZE", 1) > 1 and not dist.is_initialized()
    context = init_distributed(settings)
    try:
        return _fit(model, train_data, val_data, loss_fn, settings, context,
                    output_dir=output_dir, last_path=last_path, best_path=best_path,
                    resume_path=resume_path, input_key=input_key, collate_fn=collate_fn,
                    optimizer=optimizer, scheduler=scheduler, progress=progress,
                    val_metric=val_metric)
    finally:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _fit(
    model: nn.Module,
    train_data: Dataset,
    val_data: Dataset | None,
    loss_fn: Callable[[Any, Mapping[str, Any]], torch.Tensor],
    settings: TrainSettings,
    context: DistributedContext,
    *,
    output_dir: Path,
    last_path: Path,
    best_path: Path,
    resume_path: Path | None,
    input_key: str,
    collate_fn: Callable | None,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any,
    progress: bool,
    val_metric: Callable[[Any, Mapping[str, Any]], torch.Tensor] | None,
) -> FitResult:
    device = context.device
    precision = _resolve_precision(settings, device)
    channels_last = _resolve_channels_last(settings, device)
    seed_everything(settings.seed + context.rank)
    _configure_determinism(settings, device)

    module = _unwrap(model)
    module.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    if optimizer is None:
        optimizer = torch.optim.SGD(module.parameters(), lr=settings.lr,
                                    momentum=settings.momentum,
                                    weight_decay=settings.weight_decay)
    if scheduler is None:
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(settings.milestones),
                                                         gamma=settings.gamma)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    state = _Progress()
    if resume_path is not None:
        state = _resume(resume_path, settings, context, module, optimizer, scheduler, scaler)
    elif context.is_main and last_path.exists():
        logger.warning("%s exists and a new run overwrites it; pass --resume to continue it",
                       last_path)

    network: nn.Module = module
    if context.is_distributed:
        device_ids = [device.index] if device.type == "cuda" else None
        network = DistributedDataParallel(module, device_ids=device_ids)

    generator = torch.Generator()
    if context.is_distributed:
        train_sampler: Sampler = DistributedSampler(
            train_data, num_replicas=context.world_size, rank=context.rank, shuffle=True,
            seed=settings.seed)
    else:
        train_sampler = RandomSampler(train_data, generator=generator)
    train_loader = _loader(train_data, settings, train_sampler, device, collate_fn, generator)
    val_loader = None
    if val_data is not None:
        val_sampler = _ShardSampler(len(val_data), context.rank, context.world_size)
        val_loader = _loader(val_data, settings, val_sampler, device, collate_fn)

    if isinstance(loss_fn, nn.Module):
        # A loss module's buffers (class weights, pos_weight) must sit beside the logits.
        loss_fn.to(device)
    loop = _Loop(model=network, loss_fn=loss_fn, optimizer=optimizer, scaler=scaler,
                 context=context, precision=precision, channels_last=channels_last,
                 input_key=input_key, settings=settings, progress_bar=progress,
                 val_metric=val_metric)
    history_path = output_dir / "history.csv"
    if context.is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        logger.info("training for epochs %d to %d on %s (%s, %d process(es), output %s)",
                    state.epoch + 1, settings.epochs, device, precision, context.world_size,
                    output_dir)

    for epoch in range(state.epoch + 1, settings.epochs + 1):
        _run_epoch(loop, state, epoch, train_loader, val_loader, generator, scheduler)
        if context.is_main:
            _write_history(state.history, history_path)
        _save_epoch(loop, state, scheduler, last_path, best_path, has_val=val_loader is not None)

    files = [path for path in (last_path, best_path) if path.exists()]
    if context.is_main and state.history:
        _write_history(state.history, history_path)
        _plot_history(state.history, output_dir / "loss.png")
        files += [history_path, output_dir / "loss.png"]
    context.barrier()
    if val_loader is not None and state.best_epoch == 0:
        logger.warning("no epoch had a finite validation loss, so %s was not written", best_path)

    return FitResult(best_checkpoint=best_path, last_checkpoint=last_path,
                     best_epoch=state.best_epoch, best_val_loss=state.best_val_loss,
                     history=list(state.history), files=files,
                     best_val_metric=state.best_val_metric)


def _run_epoch(
    loop: _Loop,
    state: _Progress,
    epoch: int,
    train_loader: DataLoader,
    val_loader: DataLoader | None,
    generator: torch.Generator,
    scheduler: Any,
) -> None:
    """Train and validate one epoch, step the scheduler and update ``state`` in place."""
    context = loop.context
    settings = loop.settings
    # Seeding per epoch makes the data order a function of (seed, epoch), so a resumed run
    # draws the same batches as an uninterrupted one without restoring the generator.
    generator.manual_seed(_epoch_seed(settings.seed, epoch, context.rank))
    if isinstance(train_loader.sampler, DistributedSampler):
        train_loader.sampler.set_epoch(epoch)

    lr = float(loop.optimizer.param_groups[0]["lr"])
    if context.is_main:
        logger.info("epoch %d/%d started (lr %g)", epoch, settings.epochs, lr)
    start = time.perf_counter()
    train_loss = _train_epoch(loop, train_loader, epoch)
    val_loss, val_metric = (None, None) if val_loader is None else _validate(loop, val_loader)
    scheduler.step()
    seconds = time.perf_counter() - start

    state.epoch = epoch
    row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
           "seconds": round(seconds, 3)}
    if val_metric is not None:
        row["val_metric"] = val_metric
    state.history.append(row)
    if val_loss is None:
        state.best_epoch = epoch
    elif val_metric is not None:
        if math.isfinite(val_metric) and (state.best_val_metric is None
                                          or val_metric > state.best_val_metric):
            state.best_val_metric = val_metric
            state.best_val_loss = val_loss
            state.best_epoch = epoch
    elif math.isfinite(val_loss) and (state.best_val_loss is None
                                      or val_loss < state.best_val_loss):
        state.best_val_loss = val_loss
        state.best_epoch = epoch

    if context.is_main:
        val_text = "" if val_loss is None else f", validation loss {val_loss:.6f}"
        if val_metric is not None:
            val_text += f", validation metric {val_metric:.6f}"
        logger.info("epoch %d/%d finished: training loss %.6f%s, %.1f s", epoch,
                    settings.epochs, train_loss, val_text, seconds)


def _save_epoch(
    loop: _Loop, state: _Progress, scheduler: Any, last_path: Path, best_path: Path, *,
    has_val: bool,
) -> None:
    """Write last.pt and best.pt for the epoch just finished (rank 0), then wait for all ranks."""
    settings = loop.settings
    epoch = state.epoch
    write_last = epoch % settings.checkpoint_every == 0 or epoch == settings.epochs
    write_best = state.best_epoch == epoch

    if loop.context.is_main and (write_last or write_best):
        checkpoint = _checkpoint_state(_unwrap(loop.model), loop.optimizer, scheduler,
                                       loop.scaler, state, settings, loop.context.world_size)
        if write_last:
            _save_atomic(checkpoint, last_path)
        if write_best and write_last:
            with atomic_path(best_path) as tmp:
                shutil.copyfile(last_path, tmp)
        elif write_best:
            _save_atomic(checkpoint, best_path)
        if write_best and has_val and state.best_val_metric is not None:
            logger.info("epoch %d has the highest validation metric so far (%.6f); wrote %s",
                        epoch, state.best_val_metric, best_path)
        elif write_best and has_val:
            logger.info("epoch %d has the lowest validation loss so far (%.6f); wrote %s",
                        epoch, state.best_val_loss, best_path)
    if write_last or write_best:
        loop.context.barrier()


# --- predict -----------------------------------------------------------------------------------


def _flatten_outputs(outputs: Any, prefix: str = "") -> dict[str, torch.Tensor] | torch.Tensor:
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping):
        flat: dict[str, torch.Tensor] = {}
        for key, value in outputs.items():
            name = f"{prefix}{key}"
            inner = _flatten_outputs(value, f"{name}.")
            if isinstance(inner, torch.Tensor):
                flat[name] = inner
            else:
                flat.update(inner)
        return flat
    raise FieldHarnessError(
        f"model outputs (after output_fn) are a {type(outputs).__name__}; expected a tensor or "
        "a dict of tensors, so pass an output_fn that returns one")


def _check_per_sample(name: str, tensor: torch.Tensor, size: int) -> None:
    if tensor.dim() == 0 or tensor.shape[0] != size:
        raise FieldHarnessError(
            f"output {name!r} has shape {tuple(tensor.shape)} for a batch of {size}; expected "
            "per-sample values with the batch as the first dimension")


def predict(
    model: nn.Module,
    data: Dataset,
    settings: TrainSettings,
    *,
    input_key: str = "image",
    output_fn: Callable[[Any], Any] | None = None,
    collate_fn: Callable | None = None,
    progress: bool = True,
) -> np.ndarray | dict[str, np.ndarray] | None:
    """Run ``model`` over ``data`` in dataset order and return its per-sample outputs.

    The model runs in eval mode without gradients and with the autocast of ``settings``, and is
    put back into its previous mode afterwards. Outputs are converted to float32 NumPy arrays and
    concatenated over batches. Nested dicts are flattened with dotted keys, so
    ``{"out": {"defect": t}}`` becomes ``{"out.defect": array}``.

    In a distributed run only rank 0 predicts, with the model unwrapped from DDP. When a process
    group is initialised, the other ranks wait at a barrier until rank 0 has finished.

    NOTE: that barrier is subject to the process group's timeout (10 minutes by default for
    NCCL), so predict large datasets in a single-process run.

    Args:
        model: The model; it is moved to the settings' device.
        data: A map-style dataset of dicts, read in index order.
        settings: ``batch_size``, ``workers``, ``device``, ``precision`` and ``channels_last``
            apply.
        input_key: The batch key whose value is the model input.
        output_fn: Maps the model outputs of a batch to a tensor, or a dict of tensors, with the
            batch as first dimension (default: the outputs as they are), e.g.
            ``lambda out: torch.sigmoid(out["out"]["defect"])``.
        collate_fn: Passed to the DataLoader (default: torch's default collate).
        progress: Show a tqdm bar.

    Returns:
        An array of shape ``[len(data), ...]``, or a dict of them for dict outputs. ``None`` on
        ranks other than 0 of a distributed run.

    Raises:
        FieldHarnessError: An empty dataset, outputs that are not tensors, or outputs whose first
            dimension is not the batch.
    """
    context = _context_from_environment(settings)
    if context.is_distributed and not context.is_main:
        context.barrier()
        return None
    if len(data) == 0:
        raise FieldHarnessError("cannot predict on an empty dataset; expected at least 1 item")

    device = context.device
    precision = _resolve_precision(settings, device)
    channels_last = _resolve_channels_last(settings, device)
    module = _unwrap(model)
    module.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    was_training = module.training
    module.eval()
    loader = _loader(data, settings, SequentialSampler(data), device, collate_fn)

    chunks: dict[str, list[np.ndarray]] = {}
    single = False
    try:
        with torch.no_grad():
            for batch in tqdm(loader, desc="predict", unit="batch", disable=not progress):
                batch = _to_device(batch, device, channels_last)
                inputs = _model_input(batch, input_key)
                with _autocast(device, precision):
                    outputs = module(inputs)
                    mapped = outputs if output_fn is None else output_fn(outputs)
                flat = _flatten_outputs(mapped)
                single = isinstance(flat, torch.Tensor)
                named = {"output": flat} if single else flat
                size = _batch_size(inputs)
                for name, tensor in named.items():
                    _check_per_sample(name, tensor, size)
                    chunks.setdefault(name, []).append(
                        tensor.detach().float().cpu().numpy())
    finally:
        module.train(was_training)

    result = {name: np.concatenate(parts, axis=0) for name, parts in chunks.items()}
    context.barrier()
    return result["output"] if single else result
