"""Frozen encoders that turn BIOSCAN records into embeddings for zero-shot clustering.

Every encoder returns a float32 array ``[N, D]`` with one row per record, in record order:

- :func:`kmer_frequency_encoder`: normalised k-mer counts of the DNA barcodes (no torch);
- :func:`barcodebert_encoder`: a BarcodeBERT-style DNA transformer checkpoint
  (:func:`bioscan.barcodebert.embed_barcodes`);
- :func:`torchvision_image_encoder`: any ``torchvision.models`` classification network with its
  classifier replaced by the identity, so the pooled features come out;
- :func:`read_embeddings_file`: embeddings a user computed elsewhere (no torch).

torch is imported inside the functions that need it, so this module loads without it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from harness.errors import (
    DataFormatError,
    FieldHarnessError,
    MissingDependencyError,
    UnknownNameError,
)

__all__ = [
    "DEFAULT_K",
    "EMBEDDING_FILE_SUFFIXES",
    "barcodebert_encoder",
    "build_feature_extractor",
    "kmer_frequency_encoder",
    "read_embeddings_file",
    "torchvision_image_encoder",
    "zsc_image_transform",
]

logger = logging.getLogger(__name__)

DEFAULT_K = 4
"""k-mer length of :func:`kmer_frequency_encoder`. 4 gives 256 dense dimensions per barcode of
about 650 nucleotides; with k = 6 the 4,096 counts are mostly 0 or 1 and Ward clustering and
UMAP get 16 times the work for little more information."""

EMBEDDING_FILE_SUFFIXES = (".npz", ".npy", ".parquet", ".csv")

ZSC_IMAGE_SIZE = 224
"""Resize (shorter side) and centre crop of the zero-shot clustering image pipeline."""


def kmer_frequency_encoder(
    sequences: Sequence[str | None] | pl.Series, k: int = DEFAULT_K
) -> np.ndarray:
    """Embed DNA barcodes as the relative frequencies of their overlapping k-mers.

    Windows with a character other than A, C, G or T are skipped, so runs of N do not count.

    Args:
        sequences: DNA barcodes; ``None`` embeds as all zeros.
        k: k-mer length, 1 to 10; the embedding has ``4**k`` dimensions.

    Returns:
        float32 array ``[len(sequences), 4**k]``, each row summing to 1 (0 for a barcode
        without any k-mer).

    Raises:
        FieldHarnessError: ``k`` is outside 1 to 10.
    """
    from bioscan.dna import kmer_frequencies

    return kmer_frequencies(sequences, k, normalize=True, dtype=np.float32)


def barcodebert_encoder(
    checkpoint: str | Path,
    sequences: Sequence[str | None] | pl.Series,
    *,
    batch_size: int = 256,
    device: str = "auto",
) -> np.ndarray:
    """Embed DNA barcodes with a DNA transformer checkpoint (mean of the last hidden layer).

    Args:
        checkpoint: An encoder checkpoint of :mod:`bioscan.barcodebert`.
        sequences: DNA barcodes.
        batch_size: Barcodes per forward pass.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Returns:
        float32 array ``[len(sequences), hidden size]``.

    Raises:
        MissingDependencyError: PyTorch or :mod:`bioscan.barcodebert` is not available.
        FieldHarnessError, DataFormatError: As ``embed_barcodes`` raises them.
    """
    _require_torch("the DNA transformer encoder")
    try:
        from bioscan.barcodebert import embed_barcodes
    except ImportError as error:
        raise MissingDependencyError(
            f"the DNA transformer encoder needs bioscan.barcodebert, which failed to import "
            f"({error}); use the kmer or file encoder instead") from None
    embeddings = embed_barcodes(checkpoint, sequences, batch_size=batch_size, device=device)
    return np.ascontiguousarray(embeddings, dtype=np.float32)


# --- image encoder -----------------------------------------------------------------------------


def _require_torch(purpose: str) -> None:
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as error:
        raise MissingDependencyError(
            f"{purpose} needs PyTorch ({error.name} is not installed); install it with: pip "
            "install 'fieldharness[train]'") from None


def zsc_image_transform(dataset: str = "bioscan-5m"):
    """Build the image transform of the zero-shot clustering pipeline.

    Resize the shorter side to 224, take the 224 × 224 centre crop and normalise with the
    ImageNet statistics, as the BIOSCAN-5M benchmark does for its ImageNet-pretrained encoders.
    """
    from bioscan.transforms import image_transform

    return image_transform("eval", dataset=dataset, size=ZSC_IMAGE_SIZE, resize=ZSC_IMAGE_SIZE,
                           normalization="imagenet")


def _last_linear(model) -> tuple[str, Any]:
    """Return the name and module of the last ``nn.Linear`` registered in ``model``."""
    import torch

    found = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            found = (name, module)
    if found is None:
        raise FieldHarnessError(
            f"{type(model).__name__} has no linear classifier to remove, so its pooled "
            "features cannot be taken; choose a model with a linear head, e.g. resnet50 or "
            "vit_b_16")
    return found


def _replace_module(model, name: str, replacement) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, replacement)


def _torchvision_weights(model_name: str, weights: str):
    """Return the torchvision weights enum member ``weights`` (e.g. ``"DEFAULT"``) of a model."""
    from torchvision import models

    try:
        enum = models.get_model_weights(model_name)
    except (ValueError, KeyError):
        return None
    try:
        return enum[weights]
    except KeyError:
        return None


def _model_with_torchvision_weights(model_name: str, pretrained):
    """Build a model with torchvision weights, from torch's cache or downloaded.

    Raises:
        FieldHarnessError: The file is not cached and the download failed (an offline
            machine); the message names the file to fetch and where to put it.
    """
    import os
    from urllib.error import URLError

    import torch
    from torchvision import models

    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(pretrained.url)
    try:
        return models.get_model(model_name, weights=pretrained)
    except (URLError, OSError) as error:
        raise FieldHarnessError(
            f"torchvision weights {pretrained} of {model_name} are not in torch's cache and "
            f"could not be downloaded ({error}); fetch {pretrained.url} on a machine with "
            f"network access and put it at {cached}, or pass its path as --weights"
        ) from None


def build_feature_extractor(
    model_name: str,
    weights: str | Path | None = None,
    *,
    seed: int = 0,
):
    """Build a torchvision classification model whose output is its pooled features.

    The last ``nn.Linear`` of the model (``fc`` of a ResNet, ``heads.head`` of a ViT, the last
    layer of ``classifier`` of a ConvNeXt or VGG) becomes the identity, after the weights are
    loaded.

    Args:
        model_name: A name of ``torchvision.models.list_models(torchvision.models)``.
        weights: ``None`` for random weights drawn with ``seed``. A local checkpoint file: a
            torchvision state dict, or any file :func:`harness.training.load_weights` reads.
            Or a torchvision weights name of the model such as ``"DEFAULT"`` or
            ``"IMAGENET1K_V2"``, which torchvision loads from its cache or downloads.
        seed: Seed of the random weights.

    Returns:
        The model in eval mode, on the CPU.

    Raises:
        MissingDependencyError: PyTorch or torchvision is not installed.
        UnknownNameError: ``model_name`` is not a torchvision classification model.
        FieldHarnessError: ``weights`` is neither a file nor a weights name of the model, or the
            checkpoint does not match the model.
    """
    _require_torch("the image encoder")
    import torch
    from torchvision import models

    from harness.training import load_weights

    valid = models.list_models(models)
    if model_name not in valid:
        raise UnknownNameError("torchvision classification model", model_name, valid)

    path = None if weights is None else Path(weights)
    pretrained = None
    if path is not None and not path.is_file():
        pretrained = _torchvision_weights(model_name, str(weights))
        if pretrained is None:
            raise FieldHarnessError(
                f"image encoder weights {str(weights)!r} are neither a file nor a torchvision "
                f"weights name of {model_name} (e.g. DEFAULT); pass a local checkpoint file")

    torch.manual_seed(seed)
    if pretrained is not None:
        model = _model_with_torchvision_weights(model_name, pretrained)
    else:
        model = models.get_model(model_name)
    head_name, head = _last_linear(model)
    if pretrained is None and path is not None:
        try:
            load_weights(model, path)
        except FieldHarnessError as mismatch:
            # A fine-tuned checkpoint has another number of classes; its features still load.
            try:
                load_weights(model, path, skip=(f"{head_name}.",))
            except FieldHarnessError:
                raise mismatch from None
            logger.warning("%s does not match the %d-class head of %s; loaded every layer "
                           "before %s", path, head.out_features, model_name, head_name)
    _replace_module(model, head_name, torch.nn.Identity())
    logger.info("image encoder %s: features of %s (%d dimensions)", model_name, head_name,
                head.in_features)
    return model.eval()


def torchvision_image_encoder(
    model_name: str,
    dataset,
    weights: str | Path | None = None,
    *,
    batch_size: int = 64,
    device: str = "auto",
    workers: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """Embed the images of a dataset with a frozen torchvision model.

    Args:
        model_name: A torchvision classification model, e.g. ``"resnet50"``.
        dataset: A map-style dataset whose items are dicts with an ``"image"`` tensor
            ``[3, H, W]``, e.g. :class:`bioscan.torchdata.BIOSCANDataset` built with
            :func:`zsc_image_transform`.
        weights: See :func:`build_feature_extractor`.
        batch_size: Images per forward pass.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        workers: DataLoader worker processes; 0 loads in this process.
        seed: Seed of random weights.

    Returns:
        float32 array ``[len(dataset), D]`` in dataset order.

    Raises:
        The errors of :func:`build_feature_extractor` and of ``resolve_device``.
    """
    model = build_feature_extractor(model_name, weights, seed=seed)
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from harness.training import resolve_device

    target = resolve_device(device)
    model = model.to(target)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=target.type == "cuda")
    chunks: list[np.ndarray] = []
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"embedding images ({model_name})", unit="batch"):
            images = batch["image"].to(target, non_blocking=True)
            features = model(images).flatten(1)
            chunks.append(features.float().cpu().numpy())
    if not chunks:
        raise FieldHarnessError("the image dataset is empty; there is nothing to embed")
    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)


# --- embeddings from a file --------------------------------------------------------------------


def _order_by_processid(path: Path, file_ids: Sequence[Any], embeddings: np.ndarray,
                        processids: Sequence[str], first_line: int | None) -> np.ndarray:
    """Return the rows of ``embeddings`` for ``processids``, in that order.

    ``first_line`` is the file line of row 0 in a text file, for error messages.
    """
    ids = [str(value) for value in file_ids]
    if len(ids) != embeddings.shape[0]:
        raise DataFormatError(
            f"{len(ids)} processids but {embeddings.shape[0]} embeddings", path=path,
            field="processid", expected="one processid per embedding row")
    position: dict[str, int] = {}
    for row, processid in enumerate(ids):
        if processid in position:
            line = None if first_line is None else first_line + row
            raise DataFormatError("duplicate processid", path=path, line=line,
                                  field="processid", value=processid,
                                  expected="each processid once")
        position[processid] = row
    rows = np.empty(len(processids), dtype=np.int64)
    for index, processid in enumerate(processids):
        row = position.get(processid)
        if row is None:
            missing = sum(1 for p in processids if p not in position)
            raise DataFormatError(
                f"no embedding for processid {processid!r} ({missing} of {len(processids)} "
                "records are missing)", path=path, field="processid",
                expected="an embedding for every evaluated record")
        rows[index] = row
    if len(position) > len(processids):
        logger.info("%s: using %d of its %d embeddings", path, len(processids), len(position))
    return embeddings[rows]


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with np.load(path, allow_pickle=False) as archive:
        if "embeddings" not in archive.files:
            raise DataFormatError("array 'embeddings' not found", path=path,
                                  value=", ".join(archive.files) or "(no arrays)",
                                  expected="arrays 'embeddings' [N, D] and 'processid' [N]")
        embeddings = archive["embeddings"]
        ids = archive["processid"] if "processid" in archive.files else None
    return embeddings, ids


def _read_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)
    if "processid" not in frame.columns:
        raise DataFormatError("column 'processid' not found", path=path,
                              value=", ".join(frame.columns[:10]),
                              expected="a processid column and one column per dimension, or an "
                                       "'embedding' list column")
    ids = frame["processid"].cast(pl.String).to_numpy()
    if "embedding" in frame.columns and frame.schema["embedding"] in (pl.List, pl.Array):
        lengths = frame["embedding"].list.len() if frame.schema["embedding"] == pl.List else None
        if lengths is not None and lengths.n_unique() > 1:
            raise DataFormatError("embedding lists differ in length", path=path,
                                  field="embedding", value=sorted(lengths.unique().to_list())[:5],
                                  expected="the same number of dimensions in every row")
        return np.asarray(frame["embedding"].to_list(), dtype=np.float64), ids
    values = frame.drop("processid")
    for column, dtype in values.schema.items():
        if not dtype.is_numeric():
            raise DataFormatError("embedding column is not numeric", path=path, field=column,
                                  value=str(dtype), expected="numbers in every column but "
                                                             "processid")
    if values.width == 0:
        raise DataFormatError("no embedding columns", path=path,
                              expected="one column per dimension besides processid")
    return values.to_numpy().astype(np.float64), ids


def read_embeddings_file(path: str | Path, processids: Sequence[str]) -> np.ndarray:
    """Read user-supplied embeddings and return them in the order of ``processids``.

    Formats, by suffix:

    - ``.npz``: arrays ``embeddings`` ``[M, D]`` and ``processid`` ``[M]`` (text); rows are
      matched by processid, so the file may cover more records, in any order. Without a
      ``processid`` array the rows must be in record order.
    - ``.npy``: an array ``[N, D]`` in record order.
    - ``.parquet`` / ``.csv``: a ``processid`` column and either one numeric column per
      dimension or a list column ``embedding``, matched by processid.

    Args:
        path: The file.
        processids: The processids of the evaluated records, in record order.

    Returns:
        float32 array ``[len(processids), D]``.

    Raises:
        FieldHarnessError: The file does not exist or has an unknown suffix.
        DataFormatError: A missing array or column, a shape that is not ``[N, D]``, a row count
            that differs from the records (record-order files), a duplicate processid, or a
            record without an embedding. The message names the file and the first such
            processid.
    """
    path = Path(path)
    if not path.is_file():
        raise FieldHarnessError(f"embeddings file {str(path)!r} not found")
    suffix = path.suffix.lower()
    if suffix not in EMBEDDING_FILE_SUFFIXES:
        raise FieldHarnessError(f"embeddings file {str(path)!r} has suffix {suffix!r}; expected "
                                f"one of {', '.join(EMBEDDING_FILE_SUFFIXES)}")

    ids: np.ndarray | None
    try:
        if suffix == ".npz":
            embeddings, ids = _read_npz(path)
        elif suffix == ".npy":
            embeddings, ids = np.load(path, allow_pickle=False), None
        else:
            embeddings, ids = _read_table(path)
    except (OSError, ValueError, pl.exceptions.PolarsError) as error:
        if isinstance(error, DataFormatError):
            raise
        raise DataFormatError(f"cannot read embeddings ({' '.join(str(error).split())[:200]})",
                              path=path, expected=_describe_formats()) from None

    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or not np.issubdtype(embeddings.dtype, np.number):
        raise DataFormatError("embeddings are not a 2-D numeric array", path=path,
                              field="embeddings", value=f"shape {embeddings.shape}, dtype "
                                                        f"{embeddings.dtype}",
                              expected="an array [records, dimensions] of numbers")
    if ids is None:
        if embeddings.shape[0] != len(processids):
            raise DataFormatError(
                f"{embeddings.shape[0]} embedding rows but {len(processids)} records",
                path=path, expected="one row per record in record order, or processids to "
                                    "match rows (.npz array 'processid' or a table column)")
        ordered = embeddings
    else:
        first_line = 2 if suffix == ".csv" else None  # after the header line
        ordered = _order_by_processid(path, ids.tolist(), embeddings, processids, first_line)
    return np.ascontiguousarray(ordered, dtype=np.float32)


def _describe_formats() -> str:
    return ("an .npz with arrays 'embeddings' and 'processid', an .npy array [N, D], or a "
            "Parquet/CSV table with a processid column")
