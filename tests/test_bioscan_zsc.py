"""``python -m harness run bioscan-5m zsc`` on generated sample data, every encoder, and the
embeddings-file reader."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from _processes import hide_packages_source

from bioscan.clustering import SCORED_RANKS, cluster_and_score
from bioscan.dna import deduplicate_barcodes, truncate
from bioscan.encoders import kmer_frequency_encoder, read_embeddings_file
from bioscan.sample5m import write_bioscan5m_sample
from bioscan.zsc import ZeroShotClusteringBaseline, metric_name
from harness import registry
from harness.cli import main
from harness.errors import DataFormatError, FieldHarnessError, UnknownNameError
from harness.loading import load_dataset

METRICS = ("ami_class", "ami_order", "ami_family", "ami_subfamily", "ami_genus", "ami_species",
           "ami_bin")
SAMPLE_ROWS = 3000  # gives 28 test + test_unseen records in 10 species
IMAGE_SAMPLE_ROWS = 500  # gives 5 test + test_unseen records
SUBPROCESS_TIMEOUT_S = 300


@pytest.fixture(autouse=True)
def registered():
    registry.register_baseline("bioscan-5m", "zsc", ZeroShotClusteringBaseline)


def prepare_sample(root: Path, rows: int, images: int | None) -> Path:
    """Write a sample into ``root/source``, prepare it into ``root/home`` and return the home."""
    source = write_bioscan5m_sample(root / "source", rows=rows, images=images)
    home = root / "home"
    status = main(["-q", "prepare", "bioscan-5m", "--source", str(source),
                   "--data-dir", str(home)])
    assert status == 0
    return home


def run_zsc(home: Path, output: Path, *options: str, verbosity: str = "-q") -> int:
    """Run the baseline through the CLI; ``verbosity="-v"`` logs INFO messages to stderr."""
    registry.register_baseline("bioscan-5m", "zsc", ZeroShotClusteringBaseline)
    return main([verbosity, "run", "bioscan-5m", "zsc", "--data-dir", str(home),
                 "--output", str(output), *[str(option) for option in options]])


def read_record(run_dir: Path) -> dict:
    return json.loads((run_dir / "record.json").read_text(encoding="utf-8"))


def load_records(home: Path) -> pl.DataFrame:
    """Return the records the baseline clusters by default, in its order (by processid)."""
    frame = load_dataset("bioscan-5m", split="test+test_unseen", format="polars", data_dir=home)
    return frame.sort("processid")


@pytest.fixture(scope="module")
def metadata_home(tmp_path_factory) -> Path:
    """A prepared sample without images, as a metadata-only copy of the release."""
    return prepare_sample(tmp_path_factory.mktemp("zsc-metadata"), SAMPLE_ROWS, images=0)


@pytest.fixture(scope="module")
def image_home(tmp_path_factory) -> Path:
    return prepare_sample(tmp_path_factory.mktemp("zsc-images"), IMAGE_SAMPLE_ROWS, images=None)


@pytest.fixture(scope="module")
def kmer_run(metadata_home, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("zsc-kmer") / "run"
    assert run_zsc(metadata_home, output, "--encoder", "kmer", "--no-umap") == 0
    return output


# --- k-mer encoder on a metadata-only copy ------------------------------------------------------


def test_kmer_record_fields(kmer_run):
    record = read_record(kmer_run)
    assert record["dataset"] == "bioscan-5m"
    assert record["method"] == "zsc"
    assert record["split"] == "test+test_unseen"
    assert record["data_kind"] == "sample"


def test_kmer_record_metrics(kmer_run):
    metrics = read_record(kmer_run)["metrics"]
    assert tuple(metrics) == METRICS
    for name, value in metrics.items():
        assert 0.0 <= value <= 100.0, (name, value)


def test_kmer_record_config(kmer_run):
    config = read_record(kmer_run)["config"]
    assert config["encoder"] == "kmer"
    assert config["k"] == 4
    assert config["umap"] is False
    assert config["missing"] == "own_class"
    assert config["prenorm"] == "none"
    assert config["dedup_barcodes"] is False
    assert "umap_components" not in config


def test_kmer_files_written(kmer_run):
    for name in ("embeddings.npz", "ami.csv", "clusters.csv", "ami_per_rank.png"):
        assert (kmer_run / name).is_file(), name
    assert (kmer_run / "ami_per_rank.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(kmer_run.glob(".*.tmp"))


def test_kmer_scores_match_pipeline(kmer_run, metadata_home):
    records = load_records(metadata_home)
    embeddings = kmer_frequency_encoder(truncate(records["dna_barcode"], 660), 4)
    expected = cluster_and_score(embeddings, records, use_umap=False)

    table = pl.read_csv(kmer_run / "ami.csv")
    assert table["rank"].to_list() == list(SCORED_RANKS)
    assert table["records"].to_list() == [records.height] * len(SCORED_RANKS)
    metrics = read_record(kmer_run)["metrics"]
    for row in table.iter_rows(named=True):
        score = expected.scores[row["rank"]]
        assert row["ami"] == pytest.approx(100 * score.ami, abs=1e-3), row["rank"]
        assert row["true_classes"] == score.classes
        assert row["missing_labels"] == score.missing
        assert metrics[metric_name(row["rank"])] == pytest.approx(100 * score.ami, abs=1e-9)


def test_kmer_embeddings_cached(kmer_run, metadata_home):
    records = load_records(metadata_home)
    with np.load(kmer_run / "embeddings.npz") as archive:
        embeddings = archive["embeddings"]
        processids = archive["processid"].tolist()
        settings = json.loads(str(archive["encoder"]))
    assert processids == records["processid"].to_list()
    assert embeddings.dtype == np.float32
    assert embeddings.shape == (records.height, 256)
    assert np.allclose(embeddings.sum(axis=1), 1.0, atol=1e-5)
    assert settings == {"encoder": "kmer", "k": 4, "max_nucleotides": 660}


def test_kmer_clusters_csv(kmer_run, metadata_home):
    records = load_records(metadata_home)
    clusters = pl.read_csv(kmer_run / "clusters.csv")
    assert clusters.columns == ["processid", "split", "species", "cluster"]
    assert clusters["processid"].to_list() == records["processid"].to_list()
    assert clusters["cluster"].n_unique() == records["species"].n_unique()
    assert clusters["cluster"].min() == 0


def test_cache_reused_after_failed_run(kmer_run, metadata_home, tmp_path, capsys):
    output = tmp_path / "rerun"
    output.mkdir()
    (output / "embeddings.npz").write_bytes((kmer_run / "embeddings.npz").read_bytes())
    assert run_zsc(metadata_home, output, "--no-umap", verbosity="-v") == 0
    assert "using the cached embeddings" in capsys.readouterr().err
    assert read_record(output)["metrics"] == read_record(kmer_run)["metrics"]


def test_other_k_ignores_cache(kmer_run, metadata_home, tmp_path):
    output = tmp_path / "k3"
    output.mkdir()
    (output / "embeddings.npz").write_bytes((kmer_run / "embeddings.npz").read_bytes())
    assert run_zsc(metadata_home, output, "--no-umap", "--k", "3") == 0
    with np.load(output / "embeddings.npz") as archive:
        assert archive["embeddings"].shape[1] == 64


def test_exclude_missing_subfamily(metadata_home, tmp_path):
    records = load_records(metadata_home)
    labelled = records.filter(pl.col("subfamily").is_not_null()).height
    assert labelled < records.height, "the sample should have a record without a subfamily"

    output = tmp_path / "exclude"
    assert run_zsc(metadata_home, output, "--no-umap", "--exclude-missing") == 0
    table = pl.read_csv(output / "ami.csv")
    subfamily = table.filter(pl.col("rank") == "subfamily").row(0, named=True)
    assert subfamily["records"] == labelled
    assert read_record(output)["config"]["missing"] == "exclude"


def test_dedup_barcodes(metadata_home, tmp_path):
    records = load_dataset("bioscan-5m", split="test+test_unseen", format="polars",
                           data_dir=metadata_home)
    kept = deduplicate_barcodes(records).sort("processid")
    output = tmp_path / "dedup"
    assert run_zsc(metadata_home, output, "--no-umap", "--dedup-barcodes") == 0
    clusters = pl.read_csv(output / "clusters.csv")
    assert clusters["processid"].to_list() == kept["processid"].to_list()
    assert read_record(output)["config"]["dedup_barcodes"] is True


def test_single_split(metadata_home, tmp_path):
    output = tmp_path / "unseen"
    assert run_zsc(metadata_home, output, "--no-umap", "--split", "test") == 0
    assert set(pl.read_csv(output / "clusters.csv")["split"].to_list()) == {"test"}
    assert read_record(output)["split"] == "test"


# --- file encoder ------------------------------------------------------------------------------


def test_file_encoder_npz_matches_kmer(kmer_run, metadata_home, tmp_path):
    with np.load(kmer_run / "embeddings.npz") as archive:
        embeddings, processids = archive["embeddings"], archive["processid"]
    order = np.random.default_rng(0).permutation(len(processids))
    extra_ids = np.append(processids[order], "EXTRA001-24")
    extra_rows = np.vstack([embeddings[order], np.ones((1, embeddings.shape[1]))])
    file = tmp_path / "user.npz"
    np.savez(file, embeddings=extra_rows, processid=extra_ids)

    output = tmp_path / "file"
    assert run_zsc(metadata_home, output, "--encoder", "file", "--embeddings", file,
                   "--no-umap") == 0
    assert read_record(output)["metrics"] == read_record(kmer_run)["metrics"]
    assert read_record(output)["config"]["embeddings"] == str(file.resolve())


def test_file_encoder_missing_processid(metadata_home, tmp_path, capsys):
    records = load_records(metadata_home)
    ids = records["processid"].to_list()
    file = tmp_path / "partial.npz"
    np.savez(file, embeddings=np.zeros((len(ids) - 1, 3)), processid=np.array(ids[1:]))
    status = run_zsc(metadata_home, tmp_path / "partial", "--encoder", "file",
                     "--embeddings", file, "--no-umap")
    assert status == 2
    error = capsys.readouterr().err
    assert str(file) in error
    assert f"no embedding for processid {ids[0]!r} (1 of {len(ids)} records" in error


def test_file_encoder_needs_embeddings(metadata_home, tmp_path, capsys):
    assert run_zsc(metadata_home, tmp_path / "none", "--encoder", "file") == 2
    assert "--encoder file needs --embeddings FILE" in capsys.readouterr().err


def test_embeddings_option_needs_file_encoder(metadata_home, tmp_path, capsys):
    status = run_zsc(metadata_home, tmp_path / "none", "--embeddings", tmp_path / "x.npy")
    assert status == 2
    assert "--embeddings is read by --encoder file only" in capsys.readouterr().err


def test_barcodebert_needs_weights(metadata_home, tmp_path, capsys):
    assert run_zsc(metadata_home, tmp_path / "none", "--encoder", "barcodebert") == 2
    assert "--encoder barcodebert needs --weights" in capsys.readouterr().err


def test_read_npy_record_order(tmp_path):
    file = tmp_path / "e.npy"
    np.save(file, np.arange(6, dtype=np.float64).reshape(3, 2))
    embeddings = read_embeddings_file(file, ["a", "b", "c"])
    assert embeddings.dtype == np.float32
    assert embeddings.tolist() == [[0, 1], [2, 3], [4, 5]]


def test_read_npy_length_mismatch(tmp_path):
    file = tmp_path / "e.npy"
    np.save(file, np.zeros((2, 4)))
    with pytest.raises(DataFormatError, match=r"e\.npy: 2 embedding rows but 3 records"):
        read_embeddings_file(file, ["a", "b", "c"])


def test_read_npz_without_embeddings(tmp_path):
    file = tmp_path / "e.npz"
    np.savez(file, features=np.zeros((2, 2)))
    with pytest.raises(DataFormatError, match="array 'embeddings' not found.*'features'"):
        read_embeddings_file(file, ["a", "b"])


def test_read_csv_columns_by_processid(tmp_path):
    file = tmp_path / "e.csv"
    file.write_text("processid,d0,d1\nb,3,4\na,1,2\n", encoding="utf-8")
    assert read_embeddings_file(file, ["a", "b"]).tolist() == [[1, 2], [3, 4]]


def test_read_csv_duplicate_processid_line(tmp_path):
    file = tmp_path / "e.csv"
    file.write_text("processid,d0\na,1\nb,2\na,3\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"e\.csv:4: duplicate processid \(field "
                                              r"'processid', value 'a'\)"):
        read_embeddings_file(file, ["a", "b"])


def test_read_csv_text_column(tmp_path):
    file = tmp_path / "e.csv"
    file.write_text("processid,d0,note\na,1,x\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="embedding column is not numeric.*'note'"):
        read_embeddings_file(file, ["a"])


def test_read_parquet_list_column(tmp_path):
    file = tmp_path / "e.parquet"
    pl.DataFrame({"processid": ["x", "y"], "embedding": [[1.0, 2.0], [3.0, 4.0]]}).write_parquet(
        file)
    assert read_embeddings_file(file, ["y", "x"]).tolist() == [[3, 4], [1, 2]]


def test_read_unknown_suffix(tmp_path):
    file = tmp_path / "e.txt"
    file.write_text("1 2\n", encoding="utf-8")
    with pytest.raises(FieldHarnessError, match="suffix '.txt'; expected one of .npz"):
        read_embeddings_file(file, ["a"])


def test_read_missing_file(tmp_path):
    with pytest.raises(FieldHarnessError, match="not found"):
        read_embeddings_file(tmp_path / "absent.npz", ["a"])


# --- image encoder -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def test_image_encoder_run(image_home, resnet18_weights, tmp_path):
    output = tmp_path / "image"
    assert run_zsc(image_home, output, "--encoder", "image", "--model", "resnet18",
                   "--weights", resnet18_weights, "--no-umap", "--batch-size", "4") == 0
    record = read_record(output)
    assert record["config"]["model"] == "resnet18"
    assert record["config"]["weights"] == str(resnet18_weights.resolve())
    assert tuple(record["metrics"]) == METRICS

    records = load_records(image_home)
    with np.load(output / "embeddings.npz") as archive:
        embeddings = archive["embeddings"]
        assert archive["processid"].tolist() == records["processid"].to_list()
    assert embeddings.shape == (records.height, 512)  # resnet18's pooled features
    assert np.isfinite(embeddings).all()
    assert (output / "ami_per_rank.png").is_file()


def test_image_encoder_matches_model(image_home, resnet18_weights):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from bioscan.encoders import torchvision_image_encoder, zsc_image_transform
    from bioscan.torchdata import BIOSCANDataset

    dataset = BIOSCANDataset("bioscan-5m", split="test", modalities=("image",),
                             target_rank=None, transform=zsc_image_transform(),
                             data_dir=image_home)
    embeddings = torchvision_image_encoder("resnet18", dataset, resnet18_weights,
                                           batch_size=3, device="cpu")

    model = torchvision.models.resnet18()
    model.load_state_dict(torch.load(resnet18_weights, weights_only=True))
    model.fc = torch.nn.Identity()
    model.eval()
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    assert images.shape[-2:] == (224, 224)
    with torch.no_grad():
        expected = model(images).numpy()
    assert np.allclose(embeddings, expected, atol=1e-4)


def test_image_encoder_on_metadata_copy(metadata_home, resnet18_weights, tmp_path, capsys):
    pytest.importorskip("torch")
    status = run_zsc(metadata_home, tmp_path / "noimages", "--encoder", "image", "--model",
                     "resnet18", "--weights", resnet18_weights, "--no-umap")
    assert status == 2
    assert "no records to load" in capsys.readouterr().err


def test_feature_extractor_finetuned_head(tmp_path, caplog):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from bioscan.encoders import build_feature_extractor

    torch.manual_seed(2)
    finetuned = torchvision.models.resnet18(num_classes=10)
    path = tmp_path / "finetuned.pt"
    torch.save({"state_dict": finetuned.state_dict()}, path)
    with caplog.at_level(logging.WARNING, logger="bioscan.encoders"):
        model = build_feature_extractor("resnet18", path)
    assert any("1000-class head" in message for message in caplog.messages)
    assert isinstance(model.fc, torch.nn.Identity)
    assert torch.equal(model.conv1.weight, finetuned.conv1.weight)


def test_feature_extractor_nested_head():
    torch = pytest.importorskip("torch")
    from bioscan.encoders import build_feature_extractor

    model = build_feature_extractor("mobilenet_v3_small")
    assert isinstance(model.classifier[3], torch.nn.Identity)
    with torch.no_grad():
        features = model(torch.zeros(2, 3, 64, 64))
    assert features.shape == (2, 1024)  # the input of the removed 1000-class layer


def test_feature_extractor_wrong_architecture(tmp_path):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from bioscan.encoders import build_feature_extractor

    path = tmp_path / "mobilenet.pt"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), path)
    with pytest.raises(FieldHarnessError, match="does not match the model"):
        build_feature_extractor("resnet18", path)


def test_feature_extractor_unknown_model():
    pytest.importorskip("torch")
    from bioscan.encoders import build_feature_extractor

    with pytest.raises(UnknownNameError, match="'resnet5'.*resnet50"):
        build_feature_extractor("resnet5")


def test_feature_extractor_unknown_weights_name(tmp_path):
    pytest.importorskip("torch")
    from bioscan.encoders import build_feature_extractor

    with pytest.raises(FieldHarnessError, match="neither a file nor a torchvision weights name"):
        build_feature_extractor("resnet18", tmp_path / "missing.pt")


# --- DNA transformer encoder -------------------------------------------------------------------


def test_barcodebert_encoder_run(metadata_home, tmp_path):
    pytest.importorskip("torch")
    barcodebert = pytest.importorskip("bioscan.barcodebert",
                                      reason="bioscan.barcodebert is not available")
    config = barcodebert.BarcodeBERTConfig(k=4, layers=1, heads=2, hidden=16, intermediate=32)
    checkpoint = barcodebert.save_encoder(barcodebert.BarcodeEncoder(config),
                                          tmp_path / "encoder.pt")

    output = tmp_path / "barcodebert"
    assert run_zsc(metadata_home, output, "--encoder", "barcodebert", "--weights", checkpoint,
                   "--no-umap", "--device", "cpu") == 0
    records = load_records(metadata_home)
    expected = barcodebert.embed_barcodes(checkpoint, records["dna_barcode"], device="cpu")
    with np.load(output / "embeddings.npz") as archive:
        assert np.allclose(archive["embeddings"], expected, atol=1e-5)
    assert read_record(output)["config"]["encoder"] == "barcodebert"


# --- without torch, and with UMAP ---------------------------------------------------------------


NO_TORCH_SCRIPT = textwrap.dedent(
    """
    from harness import registry
    from harness.cli import main
    from bioscan.zsc import ZeroShotClusteringBaseline

    registry.register_baseline("bioscan-5m", "zsc", ZeroShotClusteringBaseline)
    status = main(["-q", "run", "bioscan-5m", "zsc", "--data-dir", {home!r}, "--output",
                   {output!r}, "--encoder", "kmer", "--no-umap"])
    assert status == 0, status
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
    print("loaded:", ",".join(loaded) or "none")
    """
)


def test_kmer_runs_without_torch(metadata_home, tmp_path):
    blocked = {"torch", "torchvision", "umap"}
    script = hide_packages_source(blocked) + NO_TORCH_SCRIPT.format(
        home=str(metadata_home), output=str(tmp_path / "run"))
    env = dict(os.environ, FIELDHARNESS_HOME=str(metadata_home))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=SUBPROCESS_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "loaded: none"
    assert (tmp_path / "run" / "record.json").is_file()


@pytest.mark.slow  # numba compiles UMAP on its first call in a process (tens of seconds)
def test_kmer_umap_on_sample(metadata_home, tmp_path, capsys):
    records = load_records(metadata_home)
    output = tmp_path / "umap"
    assert run_zsc(metadata_home, output, verbosity="-v") == 0
    assert "generated sample data with 28 records" in capsys.readouterr().err
    config = read_record(output)["config"]
    assert config["umap"] is True
    assert config["umap_components"] == records.height - 2
    assert config["umap_neighbors"] == records.height - 1
    assert config["umap_seed"] == 0
    assert config["umap_min_dist"] == 0.0


def test_offline_weights_name_says_where_to_put_file(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # No network here: the download torchvision would start is replaced by the error an
    # offline machine gets, so that the message can be checked.
    from urllib.error import URLError

    import torch
    from torchvision import models

    from bioscan.encoders import build_feature_extractor

    def offline(name: str, **kwargs: object):
        if kwargs.get("weights") is not None:
            raise URLError("Name or service not known")
        return original(name, **kwargs)

    original = models.get_model
    monkeypatch.setattr(models, "get_model", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    url = models.ResNet18_Weights.DEFAULT.url
    expected = tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1]
    with pytest.raises(FieldHarnessError) as error:
        build_feature_extractor("resnet18", "DEFAULT")
    message = str(error.value)
    assert "are not in torch's cache and could not be downloaded" in message
    assert f"fetch {url} on a machine with network access and put it at {expected}" in message
    assert "or pass its path as --weights" in message
