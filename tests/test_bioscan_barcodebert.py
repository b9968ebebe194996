"""The BarcodeBERT model, its masking, training and embeddings, and ``run bioscan-5m barcodebert``.

Models here are tiny (hidden size 16 to 32, one or two layers) and barcodes are cut to a few
hundred nucleotides, so that every test runs in seconds on a CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from bioscan.barcodebert import (
    IGNORE_INDEX,
    BarcodeBERTConfig,
    BarcodeDataset,
    BarcodeEmbedder,
    BarcodeEncoder,
    embed_barcodes,
    finetune,
    load_encoder,
    mask_tokens,
    masked_lm_loss,
    predict_classes,
    pretrain,
    save_encoder,
    steps_per_epoch,
)
from bioscan.barcodebert_baseline import BarcodeBERTBaseline, prepare_barcodes
from harness import registry
from harness.cli import main
from harness.errors import DataFormatError, FieldHarnessError
from harness.training import TrainSettings

SHARED = Path(__file__).resolve().parents[2] / "shared"
CANINV_TSV = SHARED / "realdata" / "bioscan" / "dna" / "caninv_unseen.tsv"

TINY = BarcodeBERTConfig(k=4, layers=1, heads=2, hidden=16, intermediate=32,
                         max_nucleotides=200)


@pytest.fixture(autouse=True)
def single_thread():
    """Run torch on one thread: these tiny models are slower with several competing threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_barcode(rng: np.random.Generator, length: int) -> str:
    return "".join(rng.choice(list("ACGT"), size=length))


def mutate(rng: np.random.Generator, barcode: str, rate: float) -> str:
    bases = np.array(list(barcode))
    changed = rng.random(bases.size) < rate
    bases[changed] = rng.choice(list("ACGT"), size=int(changed.sum()))
    return "".join(bases)


def token_batch(rows: int = 64, length: int = 40, seed: int = 0) -> torch.Tensor:
    """Token ids with real k-mers, [UNK] and trailing padding, as the tokenizer makes them."""
    rng = np.random.default_rng(seed)
    tokenizer = TINY.tokenizer()
    barcodes = []
    for _ in range(rows):
        barcode = list(random_barcode(rng, int(rng.integers(length, 4 * length))))
        barcode[int(rng.integers(0, len(barcode)))] = "N"
        barcodes.append("".join(barcode))
    input_ids, _ = tokenizer.encode_batch(barcodes)
    return torch.from_numpy(input_ids)


# --- masking and loss ---


def test_mask_ratio_half_of_real_kmers():
    tokenizer = TINY.tokenizer()
    input_ids = token_batch(rows=256)
    real = input_ids >= len(tokenizer.special_tokens)

    masked_ids, _ = mask_tokens(input_ids, tokenizer, generator=torch.Generator().manual_seed(0))
    masked = masked_ids == tokenizer.mask_id

    ratio = float(masked.sum() / real.sum())
    assert abs(ratio - 0.5) < 0.02
    assert not masked[~real].any()


def test_mask_never_touches_special_tokens():
    tokenizer = TINY.tokenizer()
    input_ids = token_batch()
    special = input_ids < len(tokenizer.special_tokens)
    assert (input_ids == tokenizer.pad_id).any()
    assert (input_ids == tokenizer.unk_id).any()

    masked_ids, labels = mask_tokens(input_ids, tokenizer, ratio=1.0)

    assert torch.equal(masked_ids[special], input_ids[special])
    assert (labels[special] == IGNORE_INDEX).all()


def test_mask_labels_cover_every_real_kmer():
    tokenizer = TINY.tokenizer()
    input_ids = token_batch()
    real = input_ids >= len(tokenizer.special_tokens)

    _, labels = mask_tokens(input_ids, tokenizer)

    assert torch.equal(labels != IGNORE_INDEX, real)
    assert torch.equal(labels[real], input_ids[real] - len(tokenizer.special_tokens))
    assert int(labels.max()) < TINY.num_kmers


def test_mask_same_seed_same_mask():
    tokenizer = TINY.tokenizer()
    input_ids = token_batch()

    first, _ = mask_tokens(input_ids, tokenizer, generator=torch.Generator().manual_seed(7))
    second, _ = mask_tokens(input_ids, tokenizer, generator=torch.Generator().manual_seed(7))
    other, _ = mask_tokens(input_ids, tokenizer, generator=torch.Generator().manual_seed(8))

    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_mask_rejects_ratio_above_one():
    with pytest.raises(FieldHarnessError, match="mask ratio is 1.5"):
        mask_tokens(token_batch(rows=2), TINY.tokenizer(), ratio=1.5)


def test_masked_lm_loss_averages_real_positions():
    tokenizer = TINY.tokenizer()
    input_ids = token_batch(rows=8)
    _, labels = mask_tokens(input_ids, tokenizer)
    logits = torch.randn(*input_ids.shape, TINY.num_kmers)
    real = labels != IGNORE_INDEX

    loss = masked_lm_loss(logits, {"labels": labels})

    expected = torch.nn.functional.cross_entropy(logits[real], labels[real])
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)


def test_masked_lm_loss_zero_without_real_kmers():
    labels = torch.full((2, 5), IGNORE_INDEX)
    logits = torch.randn(2, 5, TINY.num_kmers, requires_grad=True)

    loss = masked_lm_loss(logits, {"labels": labels})

    assert float(loss.detach()) == 0.0
    loss.backward()


# --- config, data and checkpoints ---


def test_config_rejects_hidden_not_multiple_of_heads():
    with pytest.raises(FieldHarnessError, match="hidden size must be a multiple"):
        BarcodeBERTConfig(hidden=30, heads=4)


def test_config_rejects_more_tokens_than_positions():
    with pytest.raises(FieldHarnessError, match="max_positions is 10"):
        BarcodeBERTConfig(k=4, max_nucleotides=660, max_positions=10)


def test_dataset_without_offset_equals_tokenizer():
    rng = np.random.default_rng(0)
    barcodes = [random_barcode(rng, 300) for _ in range(5)]

    batch = BarcodeDataset(barcodes, TINY).__getitems__([0, 3])

    expected_ids, expected_mask = TINY.tokenizer().encode_batch(
        [barcodes[0][:200], barcodes[3][:200]])
    assert torch.equal(batch["inputs"]["input_ids"], torch.from_numpy(expected_ids))
    assert torch.equal(batch["inputs"]["attention_mask"], torch.from_numpy(expected_mask))
    assert batch["inputs"]["input_ids"].shape == (2, TINY.max_tokens)


def test_dataset_random_offset_shifts_kmers():
    barcode = "ACGTTGCAAGCT" * 30
    data = BarcodeDataset([barcode] * 64, TINY, random_offset=True)
    tokenizer = TINY.tokenizer()
    shifted = {tuple(tokenizer.encode(barcode[offset:200 + offset])) for offset in range(4)}

    torch.manual_seed(0)
    rows = {tuple(row.tolist()) for row in data.__getitems__(list(range(64)))["inputs"]
            ["input_ids"]}

    assert rows == shifted


def test_dataset_item_has_target():
    data = BarcodeDataset(["ACGTACGT", "TTTTAAAA"], TINY, targets=[1, 0])

    item = data[1]

    assert int(item["target"]) == 0
    assert item["inputs"]["input_ids"].shape == (TINY.max_tokens,)


def test_dataset_rejects_target_count():
    with pytest.raises(FieldHarnessError, match="one class index per barcode"):
        BarcodeDataset(["ACGT", "ACGT"], TINY, targets=[0])


def test_load_encoder_rejects_other_file(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {}}, path)

    with pytest.raises(DataFormatError, match="not a BarcodeBERT encoder checkpoint"):
        load_encoder(path)


def test_load_encoder_missing_file(tmp_path):
    with pytest.raises(FieldHarnessError, match="not found"):
        load_encoder(tmp_path / "missing.pt")


def test_steps_per_epoch_counts_short_batch():
    settings = TrainSettings(batch_size=32)
    assert steps_per_epoch(100, settings, world_size=1) == 4
    assert steps_per_epoch(100, settings, world_size=2) == 2
    capped = TrainSettings(batch_size=32, max_steps_per_epoch=3)
    assert steps_per_epoch(1000, capped, world_size=1) == 3


# --- training and embeddings ---


@pytest.mark.realdata
@pytest.mark.skipif(not CANINV_TSV.exists(),
                    reason=f"real CanInv barcodes not found at {CANINV_TSV}")
def test_pretrain_loss_falls_on_real_barcodes(tmp_path):
    frame = pl.read_csv(CANINV_TSV, separator="\t", infer_schema_length=0)
    barcodes = frame["nucleotides"][:192]
    settings = TrainSettings(epochs=3, batch_size=32, lr=0.005, weight_decay=0.0, device="cpu")

    _, result, encoder_path = pretrain(barcodes, TINY, settings, tmp_path, progress=False)

    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0] - 0.3
    assert (tmp_path / "loss.png").is_file()
    assert encoder_path.is_file()


def test_finetune_beats_chance_on_easy_task(tmp_path):
    rng = np.random.default_rng(0)
    prototypes = [random_barcode(rng, 200) for _ in range(4)]
    labels = np.repeat(np.arange(4), 24)
    barcodes = [mutate(rng, prototypes[label], 0.05) for label in labels]
    test_labels = np.repeat(np.arange(4), 6)
    test_barcodes = [mutate(rng, prototypes[label], 0.05) for label in test_labels]
    settings = TrainSettings(epochs=4, batch_size=16, lr=0.01, weight_decay=0.0, device="cpu")

    model, _ = finetune(barcodes, labels, 4, TINY, settings, tmp_path, progress=False)
    predicted = predict_classes(model, test_barcodes, settings, progress=False)

    # Chance is 0.25 with four balanced classes.
    assert float(np.mean(predicted == test_labels)) >= 0.75


def test_embed_barcodes_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    barcodes = [random_barcode(rng, int(rng.integers(100, 260))) + "NNN" for _ in range(12)]
    torch.manual_seed(0)
    path = save_encoder(BarcodeEncoder(TINY), tmp_path / "encoder.pt")
    encoder = load_encoder(path)

    first = embed_barcodes(path, barcodes, batch_size=5, device="cpu")
    second = embed_barcodes(path, barcodes, batch_size=7, device="cpu")

    assert first.shape == (12, TINY.hidden)
    assert first.dtype == np.float32
    assert np.array_equal(first, second)
    encoder.eval()
    stripped = [barcode.rstrip("N") for barcode in barcodes]
    batch = BarcodeDataset(stripped, TINY).__getitems__(list(range(12)))
    with torch.no_grad():
        direct = BarcodeEmbedder(encoder)(batch["inputs"]).numpy()
    np.testing.assert_allclose(first, direct, rtol=1e-5, atol=1e-6)


def test_embed_barcodes_ignores_padding(tmp_path):
    torch.manual_seed(1)
    path = save_encoder(BarcodeEncoder(TINY), tmp_path / "encoder.pt")
    barcode = "ACGTTGCAAGCTTACG" * 5

    alone = embed_barcodes(path, [barcode], device="cpu")
    with_longer = embed_barcodes(path, [barcode, barcode * 3], device="cpu")

    np.testing.assert_allclose(alone[0], with_longer[0], rtol=1e-5, atol=1e-6)


# --- the command line ---


def test_prepare_barcodes_strips_and_keeps_first():
    frame = pl.DataFrame({
        "processid": ["t1", "p1", "p2", "u1", "e1"],
        "dna_barcode": ["ACGTNN", "ACGT", "GGGGN", None, "GGGG"],
        "split": ["train", "pretrain", "pretrain", "test_unseen", "test"],
    })

    kept = prepare_barcodes(frame)

    # pretrain comes first, so its ACGT record wins over train's ACGTNN.
    assert kept["processid"].to_list() == ["p1", "p2"]
    assert kept["dna_barcode"].to_list() == ["ACGT", "GGGG"]


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bioscan5m")
    home = root / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIELDHARNESS_HOME", str(home))
        assert main(["-q", "sample", "bioscan-5m", "--output", str(root / "source")]) == 0
        assert main(["-q", "prepare", "bioscan-5m", "--source", str(root / "source"),
                     "--data-dir", str(home)]) == 0
    return home


@pytest.fixture
def registered():
    registry.register_baseline("bioscan-5m", "barcodebert", BarcodeBERTBaseline)


def test_run_barcodebert_on_sample(sample_home, registered, tmp_path):
    output = tmp_path / "run"

    status = main(["-q", "run", "bioscan-5m", "barcodebert", "--output", str(output),
                   "--data-dir", str(sample_home), "--device", "cpu",
                   "--set", "max_nucleotides=200"])

    assert status == 0
    record = json.loads((output / "record.json").read_text(encoding="utf-8"))
    assert record["data_kind"] == "sample"
    assert record["method"] == "barcodebert"
    assert set(record["metrics"]) == {
        "species_accuracy_finetuned", "species_balanced_accuracy_finetuned",
        "species_accuracy_linear_probe", "species_balanced_accuracy_linear_probe",
        "genus_accuracy_1nn_unseen", "genus_balanced_accuracy_1nn_unseen"}
    assert record["config"]["k"] == 4
    scores = pl.read_csv(output / "scores.csv")
    assert scores["metric"].to_list() == list(record["metrics"])
    assert scores.filter(pl.col("metric") == "genus_accuracy_1nn_unseen")["paper_value"][0] == \
        pytest.approx(47.03)
    for name in ("scores.png", "pretrain/loss.png", "finetune/loss.png", "pretrain/encoder.pt",
                 "finetune/test_species_predictions.csv"):
        assert (output / name).is_file(), name


def test_run_probe_stage_from_encoder(sample_home, registered, tmp_path):
    # The checkpoint's architecture differs from the sample preset's and replaces it.
    weights = save_encoder(BarcodeEncoder(TINY), tmp_path / "encoder.pt")
    output = tmp_path / "run"

    status = main(["-q", "run", "bioscan-5m", "barcodebert", "--stage", "probe",
                   "--weights", str(weights), "--output", str(output),
                   "--data-dir", str(sample_home), "--device", "cpu"])

    assert status == 0
    record = json.loads((output / "record.json").read_text(encoding="utf-8"))
    assert record["method"] == "barcodebert-probe"
    assert record["config"]["hidden"] == TINY.hidden
    assert record["config"]["max_nucleotides"] == TINY.max_nucleotides
    assert record["config"]["weights"] == str(weights.resolve())
    assert "species_accuracy_finetuned" not in record["metrics"]
    assert "genus_accuracy_1nn_unseen" in record["metrics"]
    assert not (output / "pretrain").exists()


def test_finetune_rejects_other_encoder_config(tmp_path):
    other = BarcodeBERTConfig(k=4, layers=1, heads=2, hidden=8, intermediate=16,
                              max_nucleotides=200)
    settings = TrainSettings(epochs=1, batch_size=4, lr=0.01, device="cpu")

    with pytest.raises(FieldHarnessError, match="set the run's model settings"):
        finetune(["ACGT" * 20] * 4, [0, 1, 0, 1], 2, TINY, settings, tmp_path,
                 init_encoder=BarcodeEncoder(other), progress=False)


def test_run_finetune_stage_needs_weights(sample_home, registered, tmp_path, capsys):
    status = main(["run", "bioscan-5m", "barcodebert", "--stage", "finetune",
                   "--output", str(tmp_path / "run"), "--data-dir", str(sample_home)])

    assert status != 0
    assert "--stage finetune needs --weights PATH" in capsys.readouterr().err


def test_baseline_import_leaves_torch_out():
    code = ("import sys; import bioscan.barcodebert_baseline, bioscan.probes; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_run_barcodebert_torchrun_two_processes(sample_home, tmp_path):
    import os

    from _processes import run_process_group

    output = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "harness", "run", "bioscan-5m", "barcodebert",
               "--output", str(output), "--data-dir", str(sample_home), "--device", "cpu",
               "--set", "max_nucleotides=200"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = run_process_group(command, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]

    # One record and one encoder, from rank 0; every score of a single-process run is there.
    assert [p.relative_to(output) for p in output.rglob("record.json")] == [Path("record.json")]
    assert [p.relative_to(output) for p in output.rglob("encoder.pt")] == [
        Path("pretrain/encoder.pt")]
    record = json.loads((output / "record.json").read_text(encoding="utf-8"))
    assert "species_accuracy_finetuned" in record["metrics"]
    assert "genus_accuracy_1nn_unseen" in record["metrics"]
    predictions = pl.read_csv(output / "finetune" / "test_species_predictions.csv")
    scores = pl.read_csv(output / "scores.csv")
    scored = scores.filter(pl.col("metric") == "species_accuracy_finetuned")["count"][0]
    assert predictions.height == scored
    assert predictions["processid"].n_unique() == predictions.height
