"""DNA barcode tools: truncation, trailing-N stripping, barcode deduplication and k-mer encodings.

Truncation, stripping and deduplication reproduce ``bioscan-dataset`` 1.3.0
(``load_bioscan5m_metadata`` and ``load_bioscan1m_metadata`` with
``reduce_repeated_barcodes=True``) record for record. The k-mer tokenizer follows BarcodeBERT:
non-overlapping k-mers over A, C, G and T by default, with k-mers containing any other character
mapped to ``[UNK]``.

Nothing here imports torch at module level; :meth:`KmerTokenizer.__call__` imports it only when
it is installed.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import polars as pl

from harness.errors import DataFormatError, FieldHarnessError, UnknownNameError

logger = logging.getLogger(__name__)

#: Barcode length kept by default, in nucleotides: the 658 bp COI barcode plus 2 bp of primer
#: buffer, the default ``max_nucleotides`` of bioscan-dataset 1.3.0.
MAX_NUCLEOTIDES = 660

#: Special tokens of :class:`KmerTokenizer`, in id order (ids 0 to 4).
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

HANDLE_N_MODES = ("keep", "skip", "unk")

_BASES = "ACGT"
_N_CODE = 4  # code of every character other than A, C, G and T (either case)
_MAX_K = 10
_CHUNK_NUCLEOTIDES = 32_000_000  # nucleotides encoded per block, bounds the temporary memory

# Byte -> 0..3 for A, C, G, T (upper or lower case), 4 for anything else.
_CODE_TABLE = np.full(256, _N_CODE, dtype=np.uint8)
for _code, _base in enumerate(_BASES):
    _CODE_TABLE[ord(_base)] = _code
    _CODE_TABLE[ord(_base.lower())] = _code


def _as_list(barcodes: Iterable[str | None] | pl.Series) -> list[str | None]:
    if isinstance(barcodes, str):
        raise TypeError("barcodes must be a sequence of strings, not one string")
    if isinstance(barcodes, pl.Series):
        return barcodes.to_list()
    return list(barcodes)


def truncate(
    barcodes: Iterable[str | None] | pl.Series, max_nucleotides: int | None = MAX_NUCLEOTIDES
) -> pl.Series:
    """Keep the first ``max_nucleotides`` characters of every barcode.

    bioscan-dataset 1.3.0 truncates each record's raw barcode (``str[:max_nucleotides]``) right
    after reading the CSV, before any N stripping, so a barcode cut at 660 may end in Ns that
    :func:`strip_trailing_n` removes later.

    Args:
        barcodes: Barcodes; ``None`` stays ``None``.
        max_nucleotides: Characters kept per barcode; ``None`` keeps barcodes whole.

    Returns:
        A string Series of the same length and order.

    Raises:
        FieldHarnessError: ``max_nucleotides`` is not ``None`` and not an integer >= 0.
    """
    series = barcodes if isinstance(barcodes, pl.Series) else pl.Series(_as_list(barcodes))
    series = series.cast(pl.String)
    if max_nucleotides is None:
        return series
    if isinstance(max_nucleotides, bool) or not isinstance(max_nucleotides, (int, np.integer)):
        raise FieldHarnessError(
            f"max_nucleotides must be an integer >= 0 or None, not {max_nucleotides!r}"
        )
    if max_nucleotides < 0:
        raise FieldHarnessError(f"max_nucleotides must be >= 0 or None, not {max_nucleotides}")
    return series.str.slice(0, int(max_nucleotides))


def strip_trailing_n(barcodes: Iterable[str | None] | pl.Series) -> pl.Series:
    """Remove the run of upper-case ``N`` at the end of every barcode.

    This is ``str.rstrip("N")`` as bioscan-dataset 1.3.0 applies it before deduplication: only
    upper-case N, only at the end. Leading Ns, inner Ns, lower-case ``n`` and gap characters stay.

    Args:
        barcodes: Barcodes; ``None`` stays ``None``.

    Returns:
        A string Series of the same length and order.
    """
    series = barcodes if isinstance(barcodes, pl.Series) else pl.Series(_as_list(barcodes))
    return series.cast(pl.String).str.strip_chars_end("N")


def deduplicate_barcodes(
    frame: pl.DataFrame,
    *,
    seed: int = 0,
    column: str = "dna_barcode",
    max_nucleotides: int | None = MAX_NUCLEOTIDES,
) -> pl.DataFrame:
    """Keep one record per distinct barcode, as ``reduce_repeated_barcodes=True`` does.

    The steps follow bioscan-dataset 1.3.0 in its order. Truncate every barcode to
    ``max_nucleotides``. Shuffle the rows with ``numpy.random.RandomState(seed).permutation``,
    which is what ``DataFrame.sample(frac=1, random_state=seed)`` draws. Strip trailing Ns, keep
    the first record of each stripped barcode in the shuffled order, and return the kept rows in
    their original order. Records without a barcode form one group, as in pandas
    ``drop_duplicates``. The result equals bioscan-dataset's only when ``frame`` has the rows of
    the CSV in file order, because the permutation depends on the row positions. BIOSCAN-1M's
    ``nucraw`` column goes through the same steps (pass ``column="nucraw"``).

    NOTE: bioscan-dataset returns the truncated barcodes; this function returns the kept rows
    unchanged, so apply :func:`truncate` to get its ``dna_barcode`` column.

    Args:
        frame: Metadata records in file order.
        seed: Seed of the shuffle; bioscan-dataset uses 0.
        column: Barcode column: ``dna_barcode`` (BIOSCAN-5M) or ``nucraw`` (BIOSCAN-1M).
        max_nucleotides: Characters compared per barcode; ``None`` compares whole barcodes.

    Returns:
        The kept rows of ``frame``, in their original order, with all columns unchanged.

    Raises:
        UnknownNameError: ``column`` is not a column of ``frame``.
        DataFormatError: ``column`` is not a string column.
    """
    if column not in frame.columns:
        raise UnknownNameError("barcode column", column, frame.columns)
    if frame.schema[column] not in (pl.String, pl.Null):
        raise DataFormatError(
            "barcode column is not a string column",
            field=column,
            value=str(frame.schema[column]),
            expected="a string column",
        )

    keys = strip_trailing_n(truncate(frame[column], max_nucleotides))
    permutation = np.random.RandomState(seed).permutation(frame.height)
    shuffle_rank = np.empty(frame.height, dtype=np.int64)
    shuffle_rank[permutation] = np.arange(frame.height, dtype=np.int64)

    order = pl.DataFrame(
        {
            "key": keys,
            "row": np.arange(frame.height, dtype=np.int64),
            "rank": shuffle_rank,
        }
    )
    kept = (
        order.sort("rank")
        .unique(subset="key", keep="first", maintain_order=True)
        .get_column("row")
        .sort()
    )
    logger.debug("kept %d of %d records with distinct barcodes", kept.len(), frame.height)
    return frame[kept.to_numpy()]


def _encode_flat(sequences: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encode sequences into one code array (0-3 = ACGT, 4 = other) with starts and lengths."""
    texts = ["" if s is None else s for s in sequences]
    # "replace" turns each non-ASCII character into one "?" byte, so offsets stay per character.
    joined = "".join(texts).encode("ascii", errors="replace")
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    codes = _CODE_TABLE[np.frombuffer(joined, dtype=np.uint8)]
    starts = np.zeros(len(texts), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return codes, starts, lengths


def _window_index(codes: np.ndarray, k: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the base-``base`` index of every k-length window and whether it contains N."""
    n_windows = max(codes.size - k + 1, 0)
    index = np.zeros(n_windows, dtype=np.int64)
    has_n = np.zeros(n_windows, dtype=bool)
    for offset in range(k):
        window = codes[offset : offset + n_windows]
        index *= base
        if base == 4:
            index += np.minimum(window, 3)
        else:
            index += window
        has_n |= window == _N_CODE
    return index, has_n


def _window_starts(starts: np.ndarray, counts: np.ndarray, stride: int) -> np.ndarray:
    """Return the flat start position of every k-mer, sequence by sequence."""
    total = int(counts.sum())
    first = np.repeat(starts, counts)
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return first + within * stride


def _blocks(texts: Sequence[str | None], max_rows: int | None = None) -> list[tuple[int, int]]:
    """Split the sequences into ``(start, end)`` blocks of about ``_CHUNK_NUCLEOTIDES`` each.

    ``max_rows`` also caps the sequences per block, for outputs whose size grows per row.
    """
    bounds = []
    block_start = 0
    nucleotides = 0
    for position, text in enumerate(texts):
        nucleotides += len(text or "")
        rows = position + 1 - block_start
        if nucleotides >= _CHUNK_NUCLEOTIDES or (max_rows is not None and rows >= max_rows):
            bounds.append((block_start, position + 1))
            block_start = position + 1
            nucleotides = 0
    if block_start < len(texts):
        bounds.append((block_start, len(texts)))
    return bounds


def _check_sequences(sequences: Any) -> list[str | None]:
    if isinstance(sequences, str):
        raise TypeError("sequences must be a sequence of strings; wrap one sequence in a list")
    return _as_list(sequences)


def kmer_frequencies(
    sequences: Iterable[str | None] | pl.Series,
    k: int = 4,
    *,
    normalize: bool = True,
    dtype: Any = np.float32,
) -> np.ndarray:
    """Count the overlapping k-mers of every sequence (stride 1).

    Column ``j`` is the k-mer whose base-4 digits (A=0, C=1, G=2, T=3, first base most
    significant) spell ``j``, the order of ``itertools.product("ACGT", repeat=k)``. Windows with
    any character other than A, C, G or T (either case) are skipped. Sequences are processed in
    blocks of about 32 M nucleotides, so the temporary memory stays bounded.

    Args:
        sequences: DNA sequences; ``None`` counts as empty.
        k: k-mer length, 1 to 10.
        normalize: Divide each row by its number of counted k-mers, so it sums to 1; rows without
            any counted k-mer stay all zero.
        dtype: Output dtype when ``normalize`` is true; counts are always ``int32``.

    Returns:
        Array of shape ``[len(sequences), 4**k]``.

    Raises:
        FieldHarnessError: ``k`` is outside 1 to 10.
    """
    _check_k(k)
    texts = _check_sequences(sequences)
    n_kmers = 4**k
    counts = np.zeros((len(texts), n_kmers), dtype=np.int32)

    # The bincount below allocates rows * 4**k counters, so large k gets fewer rows per block.
    max_rows = max(1, _CHUNK_NUCLEOTIDES // n_kmers)
    for block_start, block_end in _blocks(texts, max_rows):
        block = texts[block_start:block_end]
        codes, starts, lengths = _encode_flat(block)
        index, has_n = _window_index(codes, k, 4)
        per_row = np.maximum(lengths - k + 1, 0)
        positions = _window_starts(starts, per_row, 1)
        rows = np.repeat(np.arange(len(block), dtype=np.int64), per_row)
        valid = ~has_n[positions]
        flat = rows[valid] * n_kmers + index[positions[valid]]
        counts[block_start:block_end] = np.bincount(flat, minlength=len(block) * n_kmers).reshape(
            len(block), n_kmers
        )

    if not normalize:
        return counts
    totals = counts.sum(axis=1, keepdims=True)
    frequencies = np.zeros(counts.shape, dtype=dtype)
    np.divide(counts, totals, out=frequencies, where=totals > 0, casting="unsafe")
    return frequencies


def _check_k(k: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= _MAX_K:
        raise FieldHarnessError(f"k must be an integer from 1 to {_MAX_K}, not {k!r}")


class KmerTokenizer:
    """Split DNA barcodes into k-mer tokens, BarcodeBERT style.

    Vocabulary, in id order: the special tokens (``[PAD]`` = 0, ``[UNK]`` = 1, ``[CLS]`` = 2,
    ``[SEP]`` = 3, ``[MASK]`` = 4 with the default ``special_tokens``), then the 4**k ACGT k-mers
    in ``itertools.product("ACGT", repeat=k)`` order, then, only with ``handle_n="keep"``, the
    5**k - 4**k k-mers that contain ``N``, in ``product("ACGTN", repeat=k)`` order. The ACGT
    k-mers therefore have the same ids in every mode.

    Sequences are upper-cased, and every character other than A, C, G and T counts as ``N``
    (IUPAC ambiguity codes, gaps). A k-mer containing ``N`` is handled per ``handle_n``:

    - ``"unk"`` (default, as BarcodeBERT without its N-aware vocabulary): it becomes ``[UNK]``;
    - ``"skip"``: it is dropped, so the following k-mers move up one position;
    - ``"keep"``: it gets its own id in the N-aware vocabulary (5**k k-mers in all).

    k-mers start at positions 0, stride, 2 * stride, ...; a tail shorter than k is dropped. The
    default stride is k (non-overlapping, as BarcodeBERT).

    Args:
        k: k-mer length, 1 to 10.
        stride: Step between k-mer starts in nucleotides; ``None`` means k.
        handle_n: ``"unk"``, ``"skip"`` or ``"keep"``, see above.
        special_tokens: Names of the five special tokens, in the order pad, unknown,
            classification, separator, mask.
        max_length: Maximum tokens per sequence, special tokens included; longer sequences are
            cut at the end (the ``[SEP]`` token stays last). ``None`` means no limit.
        pad: With ``max_length`` set, pad every encoding to ``max_length`` tokens with ``[PAD]``.
        add_special_tokens: Put ``[CLS]`` before and ``[SEP]`` after each sequence's k-mers.

    Raises:
        FieldHarnessError: ``k``, ``stride``, ``max_length`` or ``special_tokens`` is invalid.
        UnknownNameError: ``handle_n`` is not one of the three modes.
    """

    def __init__(
        self,
        k: int = 4,
        stride: int | None = None,
        *,
        handle_n: str = "unk",
        special_tokens: Sequence[str] = SPECIAL_TOKENS,
        max_length: int | None = None,
        pad: bool = True,
        add_special_tokens: bool = False,
    ):
        _check_k(k)
        if handle_n not in HANDLE_N_MODES:
            raise UnknownNameError("handle_n mode", handle_n, HANDLE_N_MODES)
        stride = k if stride is None else stride
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
            raise FieldHarnessError(f"stride must be an integer >= 1 or None, not {stride!r}")
        special_tokens = tuple(special_tokens)
        if len(special_tokens) != len(SPECIAL_TOKENS) or len(set(special_tokens)) != len(
            special_tokens
        ):
            raise FieldHarnessError(
                "special_tokens must be 5 distinct names (pad, unknown, classification, "
                f"separator, mask), not {special_tokens!r}"
            )
        minimum_length = 2 if add_special_tokens else 1
        if max_length is not None and (
            isinstance(max_length, bool)
            or not isinstance(max_length, (int, np.integer))
            or max_length < minimum_length
        ):
            raise FieldHarnessError(
                f"max_length must be an integer >= {minimum_length} or None, not {max_length!r}"
            )

        self.k = int(k)
        self.stride = int(stride)
        self.handle_n = handle_n
        self.special_tokens = special_tokens
        self.max_length = None if max_length is None else int(max_length)
        self.pad = pad
        self.add_special_tokens = add_special_tokens
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = range(5)
        self._offset = len(special_tokens)
        self._n_acgt = 4**self.k
        self._vocab: dict[str, int] | None = None
        self._keep_table: np.ndarray | None = None
        if handle_n == "keep":
            self._keep_table = self._build_keep_table()

    def _build_keep_table(self) -> np.ndarray:
        """Map the base-5 index of every k-mer (N = 4) to its token id."""
        digits = np.array(list(itertools.product(range(5), repeat=self.k)), dtype=np.int64)
        has_n = (digits == _N_CODE).any(axis=1)
        base4 = (np.minimum(digits, 3) * (4 ** np.arange(self.k - 1, -1, -1))).sum(axis=1)
        table = np.empty(5**self.k, dtype=np.int64)
        table[~has_n] = self._offset + base4[~has_n]
        table[has_n] = self._offset + self._n_acgt + np.arange(int(has_n.sum()))
        return table

    def __len__(self) -> int:
        n_kmers = 5**self.k if self.handle_n == "keep" else self._n_acgt
        return self._offset + n_kmers

    @property
    def vocab(self) -> dict[str, int]:
        """Token -> id for every token, built on first use (about 5**k entries at most)."""
        if self._vocab is None:
            vocab = {token: index for index, token in enumerate(self.special_tokens)}
            alphabet = "ACGTN" if self.handle_n == "keep" else _BASES
            kmers = ["".join(p) for p in itertools.product(alphabet, repeat=self.k)]
            if self.handle_n == "keep":
                ids = self._keep_table
                vocab.update(zip(kmers, (int(i) for i in ids), strict=True))
            else:
                vocab.update((kmer, self._offset + i) for i, kmer in enumerate(kmers))
            self._vocab = vocab
        return self._vocab

    def token(self, token_id: int) -> str:
        """Return the token of one id.

        Raises:
            FieldHarnessError: ``token_id`` is outside ``0 .. len(self) - 1``.
        """
        token_id = int(token_id)
        if not 0 <= token_id < len(self):
            raise FieldHarnessError(
                f"token id {token_id} is outside the vocabulary (0 to {len(self) - 1})"
            )
        if token_id < self._offset:
            return self.special_tokens[token_id]
        index = token_id - self._offset
        if index < self._n_acgt:
            return "".join(_BASES[(index // 4**p) % 4] for p in range(self.k - 1, -1, -1))
        return self._inverse_vocab()[token_id]

    def _inverse_vocab(self) -> dict[int, str]:
        return {index: token for token, index in self.vocab.items()}

    def encode(self, sequence: str) -> list[int]:
        """Return the token ids of one sequence (padded only with ``max_length`` and ``pad``)."""
        if not isinstance(sequence, str):
            raise TypeError(f"sequence must be a string, not {type(sequence).__name__}")
        ids, mask = self.encode_batch([sequence])
        if self.pad and self.max_length is not None:
            return ids[0].tolist()
        return ids[0, mask[0]].tolist()

    def encode_batch(
        self, sequences: Iterable[str | None] | pl.Series
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return token ids and attention mask of many sequences, vectorised over the batch.

        Sequences are encoded in blocks of about 32 M nucleotides to bound temporary memory.

        Args:
            sequences: DNA sequences; ``None`` counts as empty.

        Returns:
            ``(input_ids, attention_mask)``, both ``[B, L]``: ``int64`` ids and a ``bool`` mask
            that is true on real tokens. ``L`` is ``max_length`` when ``max_length`` is set and
            ``pad`` is true, else the longest encoding in the batch. Shorter rows end in
            ``[PAD]``.
        """
        texts = _check_sequences(sequences)
        fixed_width = self.max_length if self.max_length is not None and self.pad else None
        blocks = [self._encode_block(texts[a:b], fixed_width) for a, b in _blocks(texts)]
        row_lengths = np.concatenate([lengths for _, lengths in blocks] or [np.zeros(0, int)])
        if fixed_width is not None:
            width = fixed_width
        else:
            width = int(row_lengths.max()) if len(texts) else 0

        input_ids = np.full((len(texts), width), self.pad_id, dtype=np.int64)
        first_row = 0
        for block_ids, _ in blocks:
            input_ids[first_row : first_row + block_ids.shape[0], : block_ids.shape[1]] = block_ids
            first_row += block_ids.shape[0]
        attention_mask = np.arange(width)[None, :] < row_lengths[:, None]
        return input_ids, attention_mask

    def _encode_block(
        self, texts: list[str | None], fixed_width: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Encode one block of sequences; return padded ids and the token count of each row."""
        codes, starts, lengths = _encode_flat(texts)
        base = 5 if self.handle_n == "keep" else 4
        index, has_n = _window_index(codes, self.k, base)

        per_row = np.where(lengths >= self.k, (lengths - self.k) // self.stride + 1, 0)
        positions = _window_starts(starts, per_row, self.stride)
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), per_row)
        if self.handle_n == "keep":
            token_ids = self._keep_table[index[positions]]
        else:
            token_ids = self._offset + index[positions]
            window_has_n = has_n[positions]
            if self.handle_n == "unk":
                token_ids[window_has_n] = self.unk_id
            else:
                token_ids = token_ids[~window_has_n]
                rows = rows[~window_has_n]
                per_row = np.bincount(rows, minlength=len(texts))

        n_special = 2 if self.add_special_tokens else 0
        limit = None if self.max_length is None else self.max_length - n_special
        kept_per_row = per_row if limit is None else np.minimum(per_row, limit)
        row_lengths = kept_per_row + n_special
        if fixed_width is not None:
            width = fixed_width
        else:
            width = int(row_lengths.max()) if len(texts) else 0

        input_ids = np.full((len(texts), width), self.pad_id, dtype=np.int64)
        column = np.arange(rows.size, dtype=np.int64) - np.repeat(
            np.cumsum(per_row) - per_row, per_row
        )
        keep = column < np.repeat(kept_per_row, per_row)
        first_column = 1 if self.add_special_tokens else 0
        input_ids[rows[keep], column[keep] + first_column] = token_ids[keep]
        if self.add_special_tokens and len(texts):
            input_ids[:, 0] = self.cls_id
            input_ids[np.arange(len(texts)), kept_per_row + 1] = self.sep_id
        return input_ids, row_lengths

    def decode(self, token_ids: Iterable[int], *, skip_special_tokens: bool = True) -> list[str]:
        """Return the tokens of the ids, leaving out special tokens unless asked.

        ``[UNK]`` counts as special. Joining the result gives the sequence back only for
        non-overlapping k-mers without unknown or skipped k-mers.

        Raises:
            FieldHarnessError: an id is outside the vocabulary.
        """
        tokens = [self.token(i) for i in np.asarray(list(token_ids)).ravel()]
        if skip_special_tokens:
            tokens = [t for t in tokens if t not in self.special_tokens]
        return tokens

    def __call__(self, sequences: Iterable[str | None] | pl.Series) -> dict[str, Any]:
        """Return ``{"input_ids", "attention_mask"}``: torch tensors when torch is installed.

        Without torch both are the numpy arrays of :meth:`encode_batch`. With torch,
        ``input_ids`` is ``int64`` and ``attention_mask`` is ``int64`` 0/1, as BERT models
        expect.
        """
        input_ids, attention_mask = self.encode_batch(sequences)
        try:
            import torch
        except ImportError:
            return {"input_ids": input_ids, "attention_mask": attention_mask}
        return {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(attention_mask.astype(np.int64)),
        }

    def __repr__(self) -> str:
        return (
            f"KmerTokenizer(k={self.k}, stride={self.stride}, handle_n={self.handle_n!r}, "
            f"max_length={self.max_length}, pad={self.pad}, "
            f"add_special_tokens={self.add_special_tokens})"
        )
