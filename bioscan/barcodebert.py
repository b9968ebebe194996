"""A BarcodeBERT-style transformer for DNA barcodes: model, masking, training and embeddings.

The model follows BarcodeBERT (Millan Arias et al., *Bioinformatics Advances* 2026, vbag054;
GitHub ``Kari-Genomics-Lab/BarcodeBERT``, ``barcodebert/pretraining.py`` and
``finetuning.py``). A barcode is cut into non-overlapping k-mers with
:class:`bioscan.dna.KmerTokenizer`, and k-mers with any base other than A, C, G or T become
``[UNK]``. A BERT encoder with token and learned position embeddings reads them. Pretraining
replaces each real k-mer token with ``[MASK]`` with probability 0.5 and scores the prediction of
the k-mer class (one of 4**k) at every real k-mer position, masked or not. A random start offset
in ``[0, k)`` shifts each barcode before tokenisation during training. Fine-tuning puts a linear
layer on the mean of the last hidden states.

Differences from the official code, each deliberate:

- Padding positions are left out of attention, of the mean pooling and of the loss. The official
  code pads with ``N`` (so padding reads as ``[UNK]``), attends to it and averages over it.
- The encoder is plain ``torch.nn.TransformerEncoder`` (post-norm, GELU) rather than
  Hugging Face ``BertModel``. It has no token-type embedding, which BERT adds as one constant
  vector for single-segment input.

This module imports torch; the command line imports it only when a BarcodeBERT run starts.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

from bioscan.dna import MAX_NUCLEOTIDES, KmerTokenizer, strip_trailing_n
from harness.atomic import atomic_path
from harness.errors import DataFormatError, FieldHarnessError

__all__ = [
    "CHECKPOINT_FORMAT",
    "IGNORE_INDEX",
    "BarcodeBERTConfig",
    "BarcodeClassifier",
    "BarcodeDataset",
    "BarcodeEmbedder",
    "BarcodeEncoder",
    "BarcodeMaskedLM",
    "classification_loss",
    "collate_batch",
    "embed",
    "embed_barcodes",
    "finetune",
    "load_encoder",
    "mask_tokens",
    "masked_lm_loss",
    "mean_pool",
    "predict_classes",
    "pretrain",
    "save_encoder",
    "steps_per_epoch",
]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "fieldharness.barcodebert"
"""Value of the ``format`` key of an encoder checkpoint written by :func:`save_encoder`."""

CHECKPOINT_FORMAT_VERSION = 1

IGNORE_INDEX = -100
"""Label of positions left out of the masked-language-model loss (padding, ``[UNK]``)."""

# The official code scales the learning rate linearly with the total batch size, relative to
# a batch of 64 (BASE_BATCH_SIZE in barcodebert/pretraining.py).
REFERENCE_BATCH_SIZE = 64


@dataclass(frozen=True)
class BarcodeBERTConfig:
    """Architecture and tokenisation of a BarcodeBERT model.

    The defaults are the official code's (``BertConfig`` defaults with the CLI's k-mer size 4,
    12 layers and 12 heads); the BIOSCAN-5M model "8-4-4" sets ``k=8, layers=4, heads=4``.

    Attributes:
        k: k-mer length; k-mers are non-overlapping (stride k).
        layers: Transformer layers.
        heads: Attention heads per layer.
        hidden: Hidden size.
        intermediate: Size of the feed-forward layer inside each transformer layer.
        max_nucleotides: Nucleotides read per barcode, counted after the random offset. The
            model reads at most ``max_nucleotides // k`` tokens.
        max_positions: Size of the position-embedding table; at least the token count.
        dropout: Dropout of embeddings, attention, feed-forward layers and heads.
    """

    k: int = 4
    layers: int = 12
    heads: int = 12
    hidden: int = 768
    intermediate: int = 3072
    max_nucleotides: int = MAX_NUCLEOTIDES
    max_positions: int = 512
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("k", "layers", "heads", "hidden", "intermediate", "max_nucleotides",
                     "max_positions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise FieldHarnessError(
                    f"invalid BarcodeBERT setting {name}={value!r}; expected an integer >= 1")
        if not 1 <= self.k <= 10:
            raise FieldHarnessError(f"invalid BarcodeBERT setting k={self.k}; expected 1 to 10")
        if self.hidden % self.heads:
            raise FieldHarnessError(
                f"invalid BarcodeBERT settings hidden={self.hidden}, heads={self.heads}; the "
                "hidden size must be a multiple of the number of heads")
        if self.max_tokens < 1 or self.max_tokens > self.max_positions:
            raise FieldHarnessError(
                f"invalid BarcodeBERT settings: max_nucleotides={self.max_nucleotides} gives "
                f"{self.max_tokens} tokens of {self.k} nucleotides, but max_positions is "
                f"{self.max_positions}; expected 1 to max_positions tokens")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise FieldHarnessError(
                f"invalid BarcodeBERT setting dropout={self.dropout!r}; expected 0 <= dropout < 1")

    @property
    def max_tokens(self) -> int:
        """Tokens per barcode: the whole k-mers in ``max_nucleotides`` nucleotides."""
        return self.max_nucleotides // self.k

    @property
    def num_kmers(self) -> int:
        """Classes of the masked-language-model head: the 4**k ACGT k-mers."""
        return 4**self.k

    def tokenizer(self) -> KmerTokenizer:
        """Return the tokenizer of this model: non-overlapping k-mers, padded, no [CLS]/[SEP]."""
        return KmerTokenizer(self.k, handle_n="unk", max_length=self.max_tokens, pad=True,
                             add_special_tokens=False)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> BarcodeBERTConfig:
        """Build a config from the keys of ``values`` that name a field; others are ignored."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as plain values."""
        return dataclasses.asdict(self)


# --- model -------------------------------------------------------------------------------------


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the hidden states of the real tokens of each sequence.

    Args:
        hidden: ``[B, L, H]`` hidden states.
        attention_mask: ``[B, L]``, true (or 1) on real tokens.

    Returns:
        ``[B, H]``; a sequence without real tokens gives zeros.
    """
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    counts = weights.sum(dim=1).clamp(min=1.0)
    return (hidden * weights).sum(dim=1) / counts


class BarcodeEncoder(nn.Module):
    """BERT encoder over k-mer tokens: token + learned position embeddings, then transformers.

    The input is ``{"input_ids": [B, L] int64, "attention_mask": [B, L] bool}``; the output is
    the last hidden states ``[B, L, hidden]``.
    """

    def __init__(self, config: BarcodeBERTConfig):
        super().__init__()
        self.config = config
        vocabulary = len(config.tokenizer())
        self.token_embedding = nn.Embedding(vocabulary, config.hidden, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_positions, config.hidden)
        self.embedding_norm = nn.LayerNorm(config.hidden, eps=1e-12)
        self.embedding_dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            config.hidden, config.heads, dim_feedforward=config.intermediate,
            dropout=config.dropout, activation="gelu", layer_norm_eps=1e-12, batch_first=True,
            norm_first=False)
        self.layers = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.apply(_init_weights)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        input_ids = inputs["input_ids"]
        attention_mask = inputs["attention_mask"].bool()
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        embedded = self.token_embedding(input_ids) + self.position_embedding(positions)[None]
        embedded = self.embedding_dropout(self.embedding_norm(embedded))
        return self.layers(embedded, src_key_padding_mask=~attention_mask)


def _init_weights(module: nn.Module) -> None:
    # BERT's initialisation: normal(0, 0.02) weights, zero biases.
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()


class BarcodeMaskedLM(nn.Module):
    """The encoder with the pretraining head: per-token logits over the 4**k k-mer classes.

    As ``BertForTokenClassification`` in the official code: dropout and one linear layer.
    """

    def __init__(self, config: BarcodeBERTConfig):
        super().__init__()
        self.encoder = BarcodeEncoder(config)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.num_kmers)
        _init_weights(self.head)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.dropout(self.encoder(inputs)))


class BarcodeClassifier(nn.Module):
    """The encoder with a linear classifier on the mean of the real tokens' hidden states."""

    def __init__(self, config: BarcodeBERTConfig, num_classes: int):
        super().__init__()
        if num_classes < 1:
            raise FieldHarnessError(f"num_classes is {num_classes}; expected at least 1")
        self.encoder = BarcodeEncoder(config)
        self.classifier = nn.Linear(config.hidden, num_classes)
        _init_weights(self.classifier)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.encoder(inputs)
        return self.classifier(mean_pool(hidden, inputs["attention_mask"]))


class BarcodeEmbedder(nn.Module):
    """The encoder followed by mean pooling: one embedding ``[B, hidden]`` per barcode."""

    def __init__(self, encoder: BarcodeEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return mean_pool(self.encoder(inputs), inputs["attention_mask"])


# --- masking and losses ------------------------------------------------------------------------


def mask_tokens(
    input_ids: torch.Tensor,
    tokenizer: KmerTokenizer,
    *,
    ratio: float = 0.5,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each real k-mer token with ``[MASK]`` with probability ``ratio``.

    Real k-mer tokens are the 4**k ACGT k-mers. Padding, ``[UNK]`` and the other special tokens
    are never masked and get the label :data:`IGNORE_INDEX`. Every real k-mer position, masked
    or not, is labelled with its k-mer class (token id minus the special-token count), so the
    loss covers all of them, as in the official code.

    Args:
        input_ids: ``[B, L]`` token ids of ``tokenizer``.
        tokenizer: The tokenizer that made the ids.
        ratio: Probability that a real k-mer token is masked, 0 to 1.
        generator: Source of the random draws; ``None`` uses torch's global generator.

    Returns:
        ``(masked_ids, labels)``, both ``[B, L]`` int64.

    Raises:
        FieldHarnessError: ``ratio`` is outside 0 to 1.
    """
    if not 0.0 <= float(ratio) <= 1.0:
        raise FieldHarnessError(f"mask ratio is {ratio!r}; expected a number from 0 to 1")
    first_kmer = len(tokenizer.special_tokens)
    real = (input_ids >= first_kmer) & (input_ids < first_kmer + 4**tokenizer.k)
    draws = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    masked = real & (draws < ratio)
    masked_ids = input_ids.masked_fill(masked, tokenizer.mask_id)
    labels = torch.where(real, input_ids - first_kmer, torch.full_like(input_ids, IGNORE_INDEX))
    return masked_ids, labels


def masked_lm_loss(outputs: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
    """Cross-entropy of the k-mer logits ``[B, L, 4**k]`` over every labelled position.

    A batch without any labelled position (only ``[UNK]`` k-mers) gives a zero loss that still
    depends on the outputs, so the training step runs as usual.
    """
    labels = batch["labels"]
    if not bool((labels != IGNORE_INDEX).any()):
        return outputs.float().sum() * 0.0
    return nn.functional.cross_entropy(outputs.float().reshape(-1, outputs.shape[-1]),
                                       labels.reshape(-1), ignore_index=IGNORE_INDEX)


def classification_loss(outputs: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
    """Cross-entropy of the class logits ``[B, C]`` against ``batch["target"]``."""
    return nn.functional.cross_entropy(outputs.float(), batch["target"])


# --- data --------------------------------------------------------------------------------------


def collate_batch(data: Any) -> Any:
    """Pass a batch from :meth:`BarcodeDataset.__getitems__` through; stack a list of items.

    The DataLoader hands the whole batch from ``__getitems__`` to the collate function, which
    must then leave it as it is.
    """
    if isinstance(data, Mapping):
        return data
    return default_collate(data)


class BarcodeDataset(Dataset):
    """DNA barcodes as token batches for :func:`harness.training.fit` and ``predict``.

    Items are dicts with ``"inputs"`` (``{"input_ids", "attention_mask"}``, the model input),
    plus ``"labels"`` when masking and ``"target"`` when targets are given. Without
    ``random_offset`` every barcode is tokenised once, here, with
    :meth:`KmerTokenizer.encode_batch`. With it, each batch draws one offset in ``[0, k)`` per
    barcode from torch's global generator and tokenises the batch at once. The DataLoader calls
    :meth:`__getitems__` per batch, so pass :func:`collate_batch` as its collate function.

    Args:
        sequences: DNA barcodes; trailing ``N`` should already be stripped.
        config: The model's config, which fixes the tokenizer.
        targets: Class index per barcode, or ``None``.
        random_offset: Drop the first 0 to k - 1 nucleotides, drawn per barcode and batch.
        mask_ratio: Mask real k-mer tokens with this probability and add MLM ``labels``;
            ``None`` leaves the input unmasked.

    Raises:
        FieldHarnessError: ``targets`` has another length than ``sequences``.
    """

    def __init__(
        self,
        sequences: Sequence[str | None] | pl.Series,
        config: BarcodeBERTConfig,
        *,
        targets: Sequence[int] | np.ndarray | None = None,
        random_offset: bool = False,
        mask_ratio: float | None = None,
    ):
        texts = sequences.to_list() if isinstance(sequences, pl.Series) else list(sequences)
        self.config = config
        self.tokenizer = config.tokenizer()
        self.random_offset = random_offset
        self.mask_ratio = mask_ratio
        self.targets = None
        if targets is not None:
            self.targets = torch.from_numpy(np.array(targets, dtype=np.int64))
            if self.targets.shape != (len(texts),):
                raise FieldHarnessError(
                    f"targets has shape {tuple(self.targets.shape)}; expected one class index "
                    f"per barcode ({len(texts)})")
        self._length = len(texts)
        self._texts: np.ndarray | None = None
        self._input_ids: torch.Tensor | None = None
        self._attention_mask: torch.Tensor | None = None
        if random_offset:
            self._texts = np.array(["" if t is None else t for t in texts], dtype=object)
        else:
            self._input_ids, self._attention_mask = self._encode(texts)

    def _encode(self, texts: Sequence[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        cut = [None if t is None else t[: self.config.max_nucleotides] for t in texts]
        input_ids, attention_mask = self.tokenizer.encode_batch(cut)
        return torch.from_numpy(input_ids), torch.from_numpy(attention_mask)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, Any]:
        batch = self.__getitems__([index])
        return _first_row(batch)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        rows = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        if self._texts is not None:
            offsets = torch.randint(0, self.config.k, (len(rows),)).tolist()
            texts = [text[offset:] for text, offset in zip(self._texts[rows.numpy()], offsets,
                                                            strict=True)]
            input_ids, attention_mask = self._encode(texts)
        else:
            input_ids, attention_mask = self._input_ids[rows], self._attention_mask[rows]

        batch: dict[str, Any] = {}
        if self.mask_ratio is not None:
            input_ids, batch["labels"] = mask_tokens(input_ids, self.tokenizer,
                                                     ratio=self.mask_ratio)
        batch["inputs"] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.targets is not None:
            batch["target"] = self.targets[rows]
        return batch


def _first_row(batch: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _first_row(value) if isinstance(value, Mapping) else value[0]
            for key, value in batch.items()}


# --- checkpoints -------------------------------------------------------------------------------


def save_encoder(encoder: BarcodeEncoder, path: str | os.PathLike[str]) -> Path:
    """Write the encoder's weights with its config and tokenizer settings, atomically.

    The file is a ``torch.save`` dict: ``format`` (:data:`CHECKPOINT_FORMAT`),
    ``format_version`` (1), ``config`` (the :class:`BarcodeBERTConfig` fields),
    ``tokenizer`` (k, stride, ``handle_n``, max_length) and ``state_dict`` (the
    :class:`BarcodeEncoder` weights). :func:`load_encoder` and :func:`embed_barcodes` read it.
    """
    path = Path(path)
    tokenizer = encoder.config.tokenizer()
    state = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "config": encoder.config.to_dict(),
        "tokenizer": {"k": tokenizer.k, "stride": tokenizer.stride,
                      "handle_n": tokenizer.handle_n, "max_length": tokenizer.max_length},
        "state_dict": {key: value.detach().cpu() for key, value in encoder.state_dict().items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_encoder(path: str | os.PathLike[str]) -> BarcodeEncoder:
    """Rebuild an encoder from a :func:`save_encoder` file, on the CPU.

    Raises:
        FieldHarnessError: The file is missing or its weights do not fit its config.
        DataFormatError: The file is not an encoder checkpoint of this format.
    """
    path = Path(path)
    if not path.is_file():
        raise FieldHarnessError(f"BarcodeBERT encoder checkpoint {str(path)!r} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for files that are not checkpoints
        raise DataFormatError(
            f"not a PyTorch checkpoint (torch.load failed: {str(error).splitlines()[0][:200]})",
            path=path) from None
    if not isinstance(state, Mapping) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
        raise DataFormatError(
            "not a BarcodeBERT encoder checkpoint", path=path, field="format", value=str(found),
            expected=f"{CHECKPOINT_FORMAT!r}, as written by bioscan.barcodebert.save_encoder")
    version = state.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise DataFormatError(
            "unsupported encoder checkpoint version", path=path, field="format_version",
            value=str(version), expected=str(CHECKPOINT_FORMAT_VERSION))
    config = BarcodeBERTConfig.from_mapping(state["config"])
    encoder = BarcodeEncoder(config)
    try:
        encoder.load_state_dict(state["state_dict"])
    except RuntimeError as error:
        details = " ".join(str(error).split())[:400]
        raise FieldHarnessError(
            f"encoder checkpoint {str(path)!r} does not match its own config: {details}") from None
    return encoder


# --- training ----------------------------------------------------------------------------------


class _PerStepSchedule:
    """A OneCycle learning-rate schedule stepped after every optimizer step.

    :func:`harness.training.fit` steps its scheduler once per epoch, so this object's
    :meth:`step` does nothing and an optimizer hook advances the real schedule per batch, as the
    official code does. :meth:`state_dict` stores the schedule, so ``--resume`` continues it.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, max_lr: float, total_steps: int):
        self.total_steps = total_steps
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr,
                                                            total_steps=total_steps)
        optimizer.register_step_post_hook(self._after_optimizer_step)

    def _after_optimizer_step(self, *_: Any) -> None:
        # The guard keeps OneCycleLR from raising when a run takes more steps than planned.
        if self.schedule.last_epoch < self.total_steps:
            self.schedule.step()

    def step(self) -> None:
        """Do nothing: the schedule advances per optimizer step."""

    def state_dict(self) -> dict[str, Any]:
        return self.schedule.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved_total = state.get("total_steps")
        if saved_total is not None and saved_total != self.total_steps:
            # NOTE: the checkpoint's schedule wins, so a resume with other epochs or batch size
            # keeps the old schedule length and stays at the final rate after it ends.
            logger.warning("the checkpoint's OneCycle schedule has %d steps but this run plans "
                           "%d; continuing the checkpoint's schedule", saved_total,
                           self.total_steps)
        self.schedule.load_state_dict(dict(state))


def steps_per_epoch(n_samples: int, settings: Any, world_size: int | None = None) -> int:
    """Return the optimizer steps of one :func:`harness.training.fit` epoch.

    Under ``torchrun`` each process gets ``ceil(n / world_size)`` samples
    (``DistributedSampler`` pads), in batches of ``settings.batch_size``; the last batch may be
    short. ``max_steps_per_epoch`` caps the count.
    """
    if world_size is None:
        world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    per_process = math.ceil(n_samples / max(world_size, 1))
    steps = math.ceil(per_process / settings.batch_size)
    if settings.max_steps_per_epoch is not None:
        steps = min(steps, settings.max_steps_per_epoch)
    return max(steps, 1)


def _adamw_one_cycle(model: nn.Module, settings: Any, n_samples: int):
    """Return AdamW and the per-step OneCycle schedule that peaks at ``settings.lr``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr,
                                  weight_decay=settings.weight_decay)
    total = steps_per_epoch(n_samples, settings) * settings.epochs
    return optimizer, _PerStepSchedule(optimizer, settings.lr, total)


def pretrain(
    sequences: Sequence[str | None] | pl.Series,
    config: BarcodeBERTConfig,
    settings: Any,
    output_dir: str | os.PathLike[str],
    *,
    mask_ratio: float = 0.5,
    val_sequences: Sequence[str | None] | pl.Series | None = None,
    resume: str | os.PathLike[str] | None = None,
    init_encoder: BarcodeEncoder | str | os.PathLike[str] | None = None,
    seed: int = 0,
    progress: bool = True,
):
    """Pretrain a :class:`BarcodeMaskedLM` with masked k-mer prediction through ``fit``.

    Training uses random offsets and masks ``mask_ratio`` of the real k-mer tokens in each
    batch. AdamW with a per-step OneCycle schedule peaking at ``settings.lr``, as the official
    code. The validation set, when given, is masked the same way without offsets.

    Args:
        sequences: Training barcodes, trailing ``N`` stripped, duplicates removed.
        config: Model architecture.
        settings: :class:`harness.training.TrainSettings` (``lr`` is the peak rate).
        output_dir: Folder for the runner's checkpoints, history and loss plot, and
            ``encoder.pt`` (:func:`save_encoder`) from the last epoch, written by rank 0 only.
        mask_ratio: Probability that a real k-mer token is masked.
        val_sequences: Barcodes for the validation loss, or ``None``.
        resume: Passed to ``fit``.
        init_encoder: An encoder, or an encoder checkpoint, to continue pretraining from.
        seed: Seed of the weight initialisation.
        progress: Show progress bars.

    Returns:
        ``(model, fit_result, encoder_path)``; the model has the last epoch's weights.
    """
    from harness.training import fit, is_main_process, seed_everything

    seed_everything(seed)
    model = BarcodeMaskedLM(config)
    if init_encoder is not None:
        _copy_encoder(model, init_encoder)
    train_data = BarcodeDataset(sequences, config, random_offset=True, mask_ratio=mask_ratio)
    val_data = None
    if val_sequences is not None:
        val_data = BarcodeDataset(val_sequences, config, mask_ratio=mask_ratio)
    optimizer, schedule = _adamw_one_cycle(model, settings, len(train_data))
    logger.info("pretraining BarcodeBERT (k=%d, %d layers, %d heads, hidden %d) on %d barcodes",
                config.k, config.layers, config.heads, config.hidden, len(train_data))
    result = fit(model, train_data, val_data, masked_lm_loss, settings, output_dir,
                 resume=resume, input_key="inputs", collate_fn=collate_batch,
                 optimizer=optimizer, scheduler=schedule, progress=progress)
    encoder_path = Path(output_dir) / "encoder.pt"
    if is_main_process():
        save_encoder(model.encoder, encoder_path)
    return model, result, encoder_path


def _copy_encoder(model: nn.Module, source: BarcodeEncoder | str | os.PathLike[str]) -> None:
    """Copy the weights of an encoder or encoder checkpoint into ``model.encoder``.

    Raises:
        FieldHarnessError: The source's config differs from the model's.
    """
    loaded = source if isinstance(source, BarcodeEncoder) else load_encoder(source)
    if loaded.config != model.encoder.config:
        raise FieldHarnessError(
            f"encoder {str(source)!r} has config {loaded.config.to_dict()}, but the run "
            f"uses {model.encoder.config.to_dict()}; set the run's model settings to the "
            "checkpoint's (--set k=..., layers=..., heads=..., hidden=...)")
    model.encoder.load_state_dict(loaded.state_dict())
    if not isinstance(source, BarcodeEncoder):
        logger.info("initialised the encoder from %s", source)


def finetune(
    sequences: Sequence[str | None] | pl.Series,
    targets: Sequence[int] | np.ndarray,
    num_classes: int,
    config: BarcodeBERTConfig,
    settings: Any,
    output_dir: str | os.PathLike[str],
    *,
    init_encoder: BarcodeEncoder | str | os.PathLike[str] | None = None,
    val_sequences: Sequence[str | None] | pl.Series | None = None,
    val_targets: Sequence[int] | np.ndarray | None = None,
    resume: str | os.PathLike[str] | None = None,
    seed: int = 0,
    progress: bool = True,
):
    """Fine-tune a :class:`BarcodeClassifier` end to end with cross-entropy through ``fit``.

    Training barcodes get random offsets, as in the official fine-tuning. AdamW with a per-step
    OneCycle schedule peaking at ``settings.lr``.

    Args:
        sequences: Training barcodes.
        targets: Class index 0 to ``num_classes - 1`` per training barcode.
        num_classes: Size of the classifier.
        config: Model architecture; must equal the encoder checkpoint's.
        settings: :class:`harness.training.TrainSettings`.
        output_dir: Folder for the runner's files.
        init_encoder: Encoder, or encoder checkpoint, to start from; ``None`` trains from
            scratch. Under ``torchrun`` pass the encoder itself, because only rank 0 writes
            checkpoint files.
        val_sequences: Validation barcodes, or ``None``.
        val_targets: Their class indices.
        resume: Passed to ``fit``.
        seed: Seed of the classifier initialisation.
        progress: Show progress bars.

    Returns:
        ``(model, fit_result)``; the model has the last epoch's weights.

    Raises:
        FieldHarnessError: A target outside ``0 .. num_classes - 1``, or an encoder checkpoint
            whose config differs from ``config``.
    """
    from harness.training import fit, seed_everything

    targets = np.asarray(targets, dtype=np.int64)
    _check_targets(targets, num_classes, "targets")
    seed_everything(seed)
    model = BarcodeClassifier(config, num_classes)
    if init_encoder is not None:
        _copy_encoder(model, init_encoder)
    train_data = BarcodeDataset(sequences, config, targets=targets, random_offset=True)
    val_data = None
    if val_sequences is not None and len(val_sequences) > 0:
        val_targets = np.asarray(val_targets, dtype=np.int64)
        _check_targets(val_targets, num_classes, "val_targets")
        val_data = BarcodeDataset(val_sequences, config, targets=val_targets)
    optimizer, schedule = _adamw_one_cycle(model, settings, len(train_data))
    logger.info("fine-tuning BarcodeBERT on %d barcodes of %d classes", len(train_data),
                num_classes)
    result = fit(model, train_data, val_data, classification_loss, settings, output_dir,
                 resume=resume, input_key="inputs", collate_fn=collate_batch,
                 optimizer=optimizer, scheduler=schedule, progress=progress)
    return model, result


def _check_targets(targets: np.ndarray, num_classes: int, name: str) -> None:
    outside = (targets < 0) | (targets >= num_classes)
    if outside.any():
        raise FieldHarnessError(
            f"{name} contains {int(targets[outside][0])}; expected class indices 0 to "
            f"{num_classes - 1} (leave out records without a known class)")


def predict_classes(
    model: BarcodeClassifier,
    sequences: Sequence[str | None] | pl.Series,
    settings: Any,
    *,
    progress: bool = True,
) -> np.ndarray | None:
    """Return the predicted class index of every barcode (``None`` on secondary ranks)."""
    from harness.training import predict

    data = BarcodeDataset(sequences, model.encoder.config)
    logits = predict(model, data, settings, input_key="inputs", collate_fn=collate_batch,
                     progress=progress)
    return None if logits is None else np.asarray(logits).argmax(axis=1)


def embed(
    encoder: BarcodeEncoder,
    sequences: Sequence[str | None] | pl.Series,
    settings: Any,
    *,
    progress: bool = True,
) -> np.ndarray | None:
    """Return the mean-pooled embeddings ``[N, hidden]`` float32 (``None`` on secondary ranks).

    Trailing ``N`` is stripped first, as in the BarcodeBERT data preparation.
    """
    from harness.training import predict

    texts = strip_trailing_n(sequences if isinstance(sequences, pl.Series)
                             else pl.Series(list(sequences), dtype=pl.String))
    data = BarcodeDataset(texts, encoder.config)
    embeddings = predict(BarcodeEmbedder(encoder), data, settings, input_key="inputs",
                         collate_fn=collate_batch, progress=progress)
    return None if embeddings is None else np.asarray(embeddings, dtype=np.float32)


def embed_barcodes(
    checkpoint: str | os.PathLike[str],
    sequences: Sequence[str | None] | pl.Series,
    *,
    batch_size: int = 256,
    device: str = "auto",
) -> np.ndarray:
    """Embed DNA barcodes with an encoder checkpoint: the mean of the last hidden states.

    Trailing ``N`` is stripped and each barcode is cut to the checkpoint's ``max_nucleotides``
    before tokenisation; padding positions are left out of the mean. Runs in float32 in this
    process, so the same checkpoint and input give the same embeddings on the same device.

    Args:
        checkpoint: An ``encoder.pt`` written by :func:`save_encoder` (``pretrain`` writes one).
        sequences: DNA barcodes; ``None`` counts as empty and embeds as zeros.
        batch_size: Barcodes per forward pass.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Returns:
        float32 array ``[len(sequences), hidden]``.

    Raises:
        FieldHarnessError: A missing or mismatched checkpoint, an empty input or a bad device.
        DataFormatError: A file that is not an encoder checkpoint.
    """
    from harness.training import TrainSettings

    if isinstance(sequences, str):
        raise TypeError("sequences must be a sequence of strings; wrap one barcode in a list")
    encoder = load_encoder(checkpoint)
    settings = TrainSettings(batch_size=batch_size, device=device, precision="fp32",
                             channels_last=False)
    # NOTE: under torchrun only rank 0 embeds; call this from a single-process run.
    embeddings = embed(encoder, sequences, settings, progress=False)
    if embeddings is None:
        raise FieldHarnessError("embed_barcodes runs in one process; call it outside torchrun")
    return embeddings
