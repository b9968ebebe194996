"""Tests of bioscan.dna: truncation, N stripping, deduplication parity and k-mer encodings."""

from __future__ import annotations

import csv
import itertools
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from _bioscan_files import COLUMNS_5M, SPLITS_5M

from bioscan.dna import (
    KmerTokenizer,
    deduplicate_barcodes,
    kmer_frequencies,
    strip_trailing_n,
    truncate,
)
from harness.errors import DataFormatError, FieldHarnessError, UnknownNameError

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:Warning")

SHARED = Path(__file__).resolve().parents[2] / "shared"
BIOSCAN_ROOT = SHARED / "realdata" / "bioscan"
SAMPLE_CSV = BIOSCAN_ROOT / "BIOSCAN_5M_sample_metadata.csv"
CANINV_TSV = BIOSCAN_ROOT / "dna" / "caninv_unseen.tsv"



def random_dna(rng: np.random.Generator, length: int) -> str:
    return "".join(rng.choice(list("ACGT"), size=length))


def barcode_variants(rng: np.random.Generator, n_rows: int) -> list[str]:
    """Draw barcodes with repeats, trailing N runs, N-only, lower case and > 660 nt tails."""
    bases = [random_dna(rng, int(rng.integers(600, 720))) for _ in range(40)]
    bases += [random_dna(rng, 660) for _ in range(5)]
    barcodes = []
    for _ in range(n_rows):
        base = bases[int(rng.integers(len(bases)))]
        variant = int(rng.integers(9))
        if variant == 1:
            base = base + "N" * int(rng.integers(1, 30))
        elif variant == 2:
            base = base[:655] + "N" * int(rng.integers(1, 20)) + random_dna(rng, 3)
        elif variant == 3:
            base = base + random_dna(rng, int(rng.integers(1, 80)))
        elif variant == 4:
            base = ""
        elif variant == 5:
            base = "N" * int(rng.integers(1, 5))
        elif variant == 6:
            base = "NN" + base
        elif variant == 7:
            base = base + "n"
        barcodes.append(base)
    return barcodes


def write_metadata_5m(path: Path, n_rows: int = 300, seed: int = 7) -> Path:
    """Write a BIOSCAN-5M metadata CSV with the official 23 columns and random records."""
    rng = np.random.default_rng(seed)
    barcodes = barcode_variants(rng, n_rows)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS_5M)
        for i, barcode in enumerate(barcodes):
            family = ["Phoridae", "Cecidomyiidae", "Sciaridae", ""][int(rng.integers(4))]
            genus = ["Megaselia", "Bradysia", "Anaspis", ""][int(rng.integers(4))]
            writer.writerow(
                [
                    f"PID{i:05d}-22", f"S{i}", genus or family or "Diptera", "Arthropoda",
                    "Insecta", "Diptera", family, "", genus, "", f"BOLD:A{i % 17:05d}", barcode,
                    "Canada", "Ontario", "43.5", "-80.2", str(1000 + i), "0.1", "0.5",
                    str(int(rng.integers(0, 7))), SPLITS_5M[int(rng.integers(len(SPLITS_5M)))],
                    str(i) if i % 5 == 0 else "", f"{i % 3:x}" if i % 2 else "",
                ]
            )  # fmt: skip
    return path


def write_metadata_1m(path: Path, n_rows: int = 300, seed: int = 11) -> Path:
    """Write a BIOSCAN-1M metadata TSV with the columns bioscan-dataset reads."""
    rng = np.random.default_rng(seed)
    barcodes = barcode_variants(rng, n_rows)
    columns = (
        "sampleid", "processid", "uri", "name", "phylum", "class", "order", "family",
        "subfamily", "tribe", "genus", "species", "nucraw", "image_file", "chunk_number",
    )  # fmt: skip
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        for i, barcode in enumerate(barcodes):
            writer.writerow(
                [
                    f"S{i}", f"PID{i:05d}-19", f"BOLD:A{i % 13:05d}", "Diptera", "Arthropoda",
                    "Insecta", "Diptera", "Phoridae", "not_classified", "not_classified",
                    "Megaselia", "not_classified", barcode, f"S{i}.jpg", str(1 + i % 4),
                ]
            )  # fmt: skip
    return path


def read_all_strings(path: Path, separator: str = ",") -> pl.DataFrame:
    return pl.read_csv(path, separator=separator, infer_schema=False)


# --- truncate and strip_trailing_n ---------------------------------------------------------------


def test_truncate_cuts_each_barcode():
    result = truncate(["ACGTN", "AC", None, ""], 3)
    assert result.to_list() == ["ACG", "AC", None, ""]


def test_truncate_none_keeps_whole():
    long = "A" * 700
    assert truncate([long], None).to_list() == [long]
    assert truncate(pl.Series([long]))[0] == "A" * 660


def test_truncate_before_strip_order():
    # A barcode whose 660-nt prefix ends in Ns: cut first, then the Ns go.
    barcode = "A" * 650 + "N" * 10 + "CCC"
    stripped = strip_trailing_n(truncate([barcode]))
    assert stripped.to_list() == ["A" * 650]
    assert strip_trailing_n([barcode]).to_list() == [barcode]


def test_truncate_rejects_bad_length():
    with pytest.raises(FieldHarnessError, match=r"max_nucleotides must be >= 0 or None, not -1"):
        truncate(["ACGT"], -1)
    with pytest.raises(FieldHarnessError, match=r"integer >= 0 or None, not '660'"):
        truncate(["ACGT"], "660")
    with pytest.raises(FieldHarnessError, match=r"not True"):
        truncate(["ACGT"], True)
    with pytest.raises(TypeError, match=r"not one string"):
        truncate("ACGT")


def test_strip_trailing_n_only_upper_end():
    result = strip_trailing_n(["ACGNNN", "NNACG", "ACnN", "NNNN", None, "ACN-N", "AC"])
    assert result.to_list() == ["ACG", "NNACG", "ACn", "", None, "ACN-", "AC"]


def test_strip_matches_python_rstrip():
    rng = np.random.default_rng(3)
    values = [
        "".join(rng.choice(list("ACGTNn-"), size=int(rng.integers(0, 12)))) for _ in range(500)
    ]
    assert strip_trailing_n(values).to_list() == [v.rstrip("N") for v in values]


# --- deduplicate_barcodes ----------------------------------------------------------------------


def test_dedup_keeps_one_per_barcode():
    frame = pl.DataFrame(
        {
            "processid": ["a", "b", "c", "d", "e", "f", "g"],
            "dna_barcode": ["ACGT", "ACGTNN", "TTTT", None, None, "NNN", ""],
        }
    )
    kept = deduplicate_barcodes(frame)
    # Groups: {a, b} (same after stripping), {c}, {d, e} (missing), {f, g} (empty after strip).
    assert kept.height == 4
    assert kept["processid"].to_list() == sorted(kept["processid"].to_list())
    assert "c" in kept["processid"].to_list()
    assert kept.columns == frame.columns
    assert kept["dna_barcode"].to_list() == [
        b for p, b in frame.iter_rows() if p in kept["processid"].to_list()
    ]


def test_dedup_choice_follows_seed_permutation():
    frame = pl.DataFrame({"processid": [str(i) for i in range(50)], "dna_barcode": ["A"] * 50})
    for seed in (0, 1, 42):
        first = int(np.random.RandomState(seed).permutation(50)[0])
        kept = deduplicate_barcodes(frame, seed=seed)
        assert kept["processid"].to_list() == [str(first)]


def test_dedup_same_as_pandas_sample():
    pandas = pytest.importorskip("pandas")
    rng = np.random.default_rng(5)
    barcodes = barcode_variants(rng, 200)
    frame = pl.DataFrame({"processid": [f"p{i}" for i in range(200)], "dna_barcode": barcodes})
    for seed in (0, 3):
        expected = pandas.DataFrame(frame.to_dict(as_series=False))
        expected["dna_barcode"] = expected["dna_barcode"].str[:660]
        expected = expected.sample(frac=1, random_state=seed)
        expected["key"] = expected["dna_barcode"].str.rstrip("N")
        expected = expected.drop_duplicates(subset=["key"]).sort_index()
        kept = deduplicate_barcodes(frame, seed=seed)
        assert kept["processid"].to_list() == expected["processid"].tolist()


def test_dedup_rejects_bad_column():
    frame = pl.DataFrame({"processid": ["a"], "dna_barcode": [1]})
    with pytest.raises(UnknownNameError, match=r"unknown barcode column 'nucraw'; valid values"):
        deduplicate_barcodes(frame, column="nucraw")
    with pytest.raises(DataFormatError, match=r"is not a string column \(field 'dna_barcode'"):
        deduplicate_barcodes(frame)


def test_dedup_empty_frame():
    frame = pl.DataFrame(
        {"processid": [], "dna_barcode": []},
        schema={"processid": pl.String, "dna_barcode": pl.String},
    )
    assert deduplicate_barcodes(frame).height == 0


@pytest.fixture(scope="module")
def bioscan_dataset():
    pytest.importorskip("bioscan_dataset", reason="bioscan-dataset (reference) is not installed")
    import bioscan_dataset

    return bioscan_dataset


@pytest.mark.parametrize("max_nucleotides", [660, None, 100])
def test_dedup_parity_5m_generated(tmp_path, bioscan_dataset, max_nucleotides):
    path = write_metadata_5m(tmp_path / "metadata.csv")
    reference = bioscan_dataset.load_bioscan5m_metadata(
        path, max_nucleotides=max_nucleotides, reduce_repeated_barcodes=True
    )
    kept = deduplicate_barcodes(read_all_strings(path), max_nucleotides=max_nucleotides)
    assert 50 < kept.height < 300
    assert kept["processid"].to_list() == reference["processid"].tolist()
    truncated = truncate(kept["dna_barcode"], max_nucleotides).fill_null("").to_list()
    assert truncated == reference["dna_barcode"].fillna("").tolist()


def test_dedup_parity_5m_split_filter(tmp_path, bioscan_dataset):
    path = write_metadata_5m(tmp_path / "metadata.csv", seed=8)
    reference = bioscan_dataset.load_bioscan5m_metadata(
        path, reduce_repeated_barcodes=True, split="train+test"
    )
    kept = deduplicate_barcodes(read_all_strings(path))
    kept = kept.filter(pl.col("split").is_in(["train", "test"]))
    assert kept["processid"].to_list() == reference["processid"].tolist()


def test_dedup_parity_1m_generated(tmp_path, bioscan_dataset):
    path = write_metadata_1m(tmp_path / "metadata.tsv")
    reference = bioscan_dataset.load_bioscan1m_metadata(path, reduce_repeated_barcodes=True)
    kept = deduplicate_barcodes(read_all_strings(path, "\t"), column="nucraw")
    assert 50 < kept.height < 300
    assert kept["processid"].to_list() == reference["processid"].tolist()


@pytest.mark.realdata
@pytest.mark.skipif(
    not SAMPLE_CSV.exists(), reason=f"real BIOSCAN sample not found at {SAMPLE_CSV}"
)
def test_dedup_parity_real_sample(bioscan_dataset):
    assert tuple(read_all_strings(SAMPLE_CSV).columns) == COLUMNS_5M
    reference = bioscan_dataset.load_bioscan5m_metadata(SAMPLE_CSV, reduce_repeated_barcodes=True)
    kept = deduplicate_barcodes(read_all_strings(SAMPLE_CSV))
    assert kept["processid"].to_list() == reference["processid"].tolist()


@pytest.mark.realdata
@pytest.mark.skipif(
    not SAMPLE_CSV.exists(), reason=f"real BIOSCAN sample not found at {SAMPLE_CSV}"
)
def test_dedup_parity_real_sample_repeated(tmp_path, bioscan_dataset):
    # The 25 real barcodes are distinct; three copies, with Ns added, give real duplicates.
    frame = read_all_strings(SAMPLE_CSV)
    copies = [
        frame,
        frame.with_columns(pl.col("processid") + "-b", pl.col("dna_barcode") + "NNN"),
        frame.with_columns(pl.col("processid") + "-c"),
    ]
    path = tmp_path / "repeated.csv"
    pl.concat(copies).write_csv(path)
    reference = bioscan_dataset.load_bioscan5m_metadata(path, reduce_repeated_barcodes=True)
    kept = deduplicate_barcodes(read_all_strings(path))
    assert kept.height == frame.height
    assert kept["processid"].to_list() == reference["processid"].tolist()


# --- KmerTokenizer ---------------------------------------------------------------------------


def reference_tokens(tokenizer: KmerTokenizer, sequence: str) -> list[int]:
    """Tokenise one sequence with a plain loop, the behaviour the docstring promises."""
    sequence = "".join(c if c in "ACGT" else "N" for c in sequence.upper())
    ids = []
    for start in range(0, len(sequence) - tokenizer.k + 1, tokenizer.stride):
        kmer = sequence[start : start + tokenizer.k]
        if "N" not in kmer:
            ids.append(tokenizer.vocab[kmer])
        elif tokenizer.handle_n == "unk":
            ids.append(tokenizer.unk_id)
        elif tokenizer.handle_n == "keep":
            ids.append(tokenizer.vocab[kmer])
    if tokenizer.max_length is not None:
        ids = ids[: tokenizer.max_length - (2 if tokenizer.add_special_tokens else 0)]
    if tokenizer.add_special_tokens:
        ids = [tokenizer.cls_id, *ids, tokenizer.sep_id]
    return ids


@pytest.fixture(scope="module")
def mixed_sequences() -> list[str]:
    rng = np.random.default_rng(1)
    sequences = ["", "A", "ACG", "ACGT", "acgtn", "ACRYGTNNNNACGT-ACG", "NNNNNNNN", "AÉCGTACGT"]
    sequences += [
        "".join(rng.choice(list("ACGTNRacgt"), size=int(rng.integers(0, 60)))) for _ in range(60)
    ]
    return sequences


@pytest.mark.parametrize(
    ("k", "stride", "handle_n", "max_length", "add_special_tokens"),
    [
        (4, None, "unk", None, False),
        (4, None, "skip", None, False),
        (3, None, "keep", None, False),
        (4, 1, "unk", 12, True),
        (5, 2, "skip", 7, False),
        (2, 3, "keep", 9, True),
        (1, None, "unk", None, True),
    ],
)
def test_tokenizer_matches_loop(
    mixed_sequences, k, stride, handle_n, max_length, add_special_tokens
):
    tokenizer = KmerTokenizer(
        k, stride, handle_n=handle_n, max_length=max_length, add_special_tokens=add_special_tokens
    )
    ids, mask = tokenizer.encode_batch(mixed_sequences)
    expected = [reference_tokens(tokenizer, s) for s in mixed_sequences]
    width = max_length if max_length is not None else max(len(e) for e in expected)
    assert ids.shape == (len(mixed_sequences), width)
    assert ids.dtype == np.int64
    assert mask.dtype == np.bool_
    for row, tokens in enumerate(expected):
        assert ids[row, mask[row]].tolist() == tokens
        assert (ids[row, ~mask[row]] == tokenizer.pad_id).all()
        assert mask[row].sum() == len(tokens)
        if max_length is None:
            assert tokenizer.encode(mixed_sequences[row]) == tokens
        else:
            assert tokenizer.encode(mixed_sequences[row]) == ids[row].tolist()


def test_tokenizer_vocabulary_layout():
    tokenizer = KmerTokenizer(3)
    assert len(tokenizer) == 5 + 64
    assert list(tokenizer.vocab)[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    kmers = ["".join(p) for p in itertools.product("ACGT", repeat=3)]
    assert [tokenizer.vocab[k] for k in kmers] == list(range(5, 69))
    keep = KmerTokenizer(3, handle_n="keep")
    assert len(keep) == 5 + 125
    assert all(keep.vocab[k] == tokenizer.vocab[k] for k in kmers)
    assert sorted(keep.vocab.values()) == list(range(len(keep)))
    assert keep.vocab["NNN"] == len(keep) - 1


def test_tokenizer_non_overlapping_default():
    tokenizer = KmerTokenizer(4)
    assert tokenizer.stride == 4
    assert tokenizer.decode(tokenizer.encode("ACGTTTTTGG")) == ["ACGT", "TTTT"]
    assert "".join(tokenizer.decode(tokenizer.encode("ACGTTTTTGGCC"))) == "ACGTTTTTGGCC"


def test_tokenizer_decode_specials_and_unk():
    tokenizer = KmerTokenizer(2, handle_n="unk", add_special_tokens=True)
    ids = tokenizer.encode("ACNA")
    assert tokenizer.decode(ids, skip_special_tokens=False) == ["[CLS]", "AC", "[UNK]", "[SEP]"]
    assert tokenizer.decode(ids) == ["AC"]
    assert tokenizer.token(len(tokenizer) - 1) == "TT"


def test_tokenizer_pad_false_keeps_lengths():
    tokenizer = KmerTokenizer(2, max_length=4, pad=False)
    ids, mask = tokenizer.encode_batch(["ACGT", "AC"])
    assert ids.shape == (2, 2)
    assert tokenizer.encode("ACGTACGTAC") == tokenizer.encode("ACGTACGT")
    assert len(tokenizer.encode("AC")) == 1
    padded = KmerTokenizer(2, max_length=4)
    assert padded.encode("AC") == [padded.vocab["AC"], 0, 0, 0]


def test_tokenizer_custom_special_names():
    tokenizer = KmerTokenizer(1, special_tokens=("<pad>", "<unk>", "<s>", "</s>", "<mask>"))
    assert tokenizer.vocab["<mask>"] == 4
    assert tokenizer.decode([0, 5], skip_special_tokens=False) == ["<pad>", "A"]


def test_tokenizer_rejects_bad_arguments():
    with pytest.raises(
        UnknownNameError, match=r"unknown handle_n mode 'drop'; valid values are: keep"
    ):
        KmerTokenizer(4, handle_n="drop")
    with pytest.raises(FieldHarnessError, match=r"k must be an integer from 1 to 10, not 0"):
        KmerTokenizer(0)
    with pytest.raises(FieldHarnessError, match=r"k must be an integer from 1 to 10, not 11"):
        KmerTokenizer(11)
    with pytest.raises(FieldHarnessError, match=r"stride must be an integer >= 1 or None, not 0"):
        KmerTokenizer(4, 0)
    with pytest.raises(FieldHarnessError, match=r"special_tokens must be 5 distinct names"):
        KmerTokenizer(4, special_tokens=("[PAD]", "[PAD]", "a", "b", "c"))
    with pytest.raises(
        FieldHarnessError, match=r"max_length must be an integer >= 2 or None, not 1"
    ):
        KmerTokenizer(4, max_length=1, add_special_tokens=True)
    with pytest.raises(
        FieldHarnessError, match=r"max_length must be an integer >= 1 or None, not 0"
    ):
        KmerTokenizer(4, max_length=0)

    tokenizer = KmerTokenizer(2)
    with pytest.raises(
        FieldHarnessError, match=r"token id 21 is outside the vocabulary \(0 to 20\)"
    ):
        tokenizer.decode([21])
    with pytest.raises(FieldHarnessError, match=r"token id -1 is outside"):
        tokenizer.token(-1)
    with pytest.raises(TypeError, match=r"sequence must be a string, not list"):
        tokenizer.encode(["ACGT"])
    with pytest.raises(TypeError, match=r"wrap one sequence in a list"):
        tokenizer.encode_batch("ACGT")


def test_tokenizer_call_returns_tensors():
    torch = pytest.importorskip("torch")
    tokenizer = KmerTokenizer(4, max_length=8)
    batch = tokenizer(["ACGTACGT", "AC"])
    assert isinstance(batch["input_ids"], torch.Tensor)
    assert batch["input_ids"].dtype == torch.int64
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0, 0, 0, 0, 0], [0] * 8]


def test_tokenizer_call_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    batch = KmerTokenizer(4)(["ACGTACGT"])
    assert isinstance(batch["input_ids"], np.ndarray)
    assert batch["attention_mask"].tolist() == [[True, True]]
    assert repr(KmerTokenizer(4)).startswith("KmerTokenizer(k=4, stride=4, handle_n='unk'")


# --- kmer_frequencies ------------------------------------------------------------------------


def loop_counts(sequence: str, k: int) -> np.ndarray:
    counts = np.zeros(4**k, dtype=np.int64)
    lookup = {"".join(p): i for i, p in enumerate(itertools.product("ACGT", repeat=k))}
    upper = sequence.upper()
    for start in range(len(upper) - k + 1):
        index = lookup.get(upper[start : start + k])
        if index is not None:
            counts[index] += 1
    return counts


@pytest.mark.parametrize("k", [1, 2, 4])
def test_kmer_counts_match_loop(mixed_sequences, k):
    counts = kmer_frequencies(mixed_sequences, k, normalize=False)
    assert counts.shape == (len(mixed_sequences), 4**k)
    assert counts.dtype == np.int32
    for row, sequence in enumerate(mixed_sequences):
        assert counts[row].tolist() == loop_counts(sequence, k).tolist()


def test_kmer_frequencies_normalised():
    frequencies = kmer_frequencies(["AAAC", "NNNN", None, "ACGTACGT"], 2)
    assert frequencies.dtype == np.float32
    assert frequencies[0, 0] == pytest.approx(2 / 3)
    assert frequencies[0, 1] == pytest.approx(1 / 3)
    assert frequencies[1].sum() == 0
    assert frequencies[2].sum() == 0
    assert frequencies[3].sum() == pytest.approx(1.0)
    as_double = kmer_frequencies(["AAAC"], 2, dtype=np.float64)
    assert as_double.dtype == np.float64


def test_kmer_frequencies_blocks(monkeypatch):
    rng = np.random.default_rng(2)
    sequences = [random_dna(rng, int(rng.integers(0, 50))) for _ in range(300)]
    whole = kmer_frequencies(sequences, 3, normalize=False)
    monkeypatch.setattr("bioscan.dna._CHUNK_NUCLEOTIDES", 100)
    assert (kmer_frequencies(sequences, 3, normalize=False) == whole).all()
    assert kmer_frequencies([], 2).shape == (0, 16)
    monkeypatch.setattr("bioscan.dna._CHUNK_NUCLEOTIDES", 64 * 7)
    assert (kmer_frequencies(sequences, 3, normalize=False) == whole).all()


def test_tokenizer_blocks_match_whole(monkeypatch, mixed_sequences):
    for max_length in (None, 6):
        tokenizer = KmerTokenizer(3, max_length=max_length, handle_n="skip")
        whole_ids, whole_mask = tokenizer.encode_batch(mixed_sequences)
        with monkeypatch.context() as patch:
            patch.setattr("bioscan.dna._CHUNK_NUCLEOTIDES", 50)
            block_ids, block_mask = tokenizer.encode_batch(mixed_sequences)
        assert (block_ids == whole_ids).all()
        assert (block_mask == whole_mask).all()
    assert KmerTokenizer(3).encode_batch([])[0].shape == (0, 0)


def test_kmer_frequencies_rejects_bad_input():
    with pytest.raises(FieldHarnessError, match=r"k must be an integer from 1 to 10, not 2.5"):
        kmer_frequencies(["ACGT"], 2.5)
    with pytest.raises(TypeError, match=r"wrap one sequence in a list"):
        kmer_frequencies("ACGT")


@pytest.mark.realdata
@pytest.mark.skipif(
    not CANINV_TSV.exists(), reason=f"real CanInv barcodes not found at {CANINV_TSV}"
)
def test_real_barcodes_kmers_and_tokens():
    barcodes = pl.read_csv(CANINV_TSV, separator="\t", infer_schema=False)["nucleotides"]
    sample = barcodes.head(200).to_list()
    counts = kmer_frequencies(sample, 4, normalize=False)
    for row, sequence in enumerate(sample[:50]):
        assert counts[row].tolist() == loop_counts(sequence, 4).tolist()
    tokenizer = KmerTokenizer(4, max_length=167, add_special_tokens=True)
    ids, mask = tokenizer.encode_batch(sample)
    for row, sequence in enumerate(sample):
        assert ids[row, mask[row]].tolist() == reference_tokens(tokenizer, sequence)
