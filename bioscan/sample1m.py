"""Generator of a synthetic BIOSCAN-1M copy in the official layout, from a few rows to full size.

The TSV has the release's columns and conventions: ``not_classified`` for a missing label,
chunk numbers of 10,000 images per ``part<N>`` folder, and six partitionings built as the
BIOSCAN-1M paper describes (``bioscan_datasplit.py`` of GitHub ``bioscan-ml/BIOSCAN-1M``):

* ``large_diptera_family``: the Diptera records of the 40 study families, split 70/10/20 %
  into train, validation and test within each family. Every other record is ``no_split``.
* ``medium_diptera_family`` and ``small_diptera_family``: about 200,000 and 50,000 records drawn
  from the large (and then the medium) partitioning, keeping their partition;
* the ``*_insect_order`` columns: Diptera records keep their Diptera-family partition, every
  other record is split 70/10/20 % within its order, with the same medium and small sizes.

Orders are drawn with the record counts of the BIOSCAN-1M README, so Diptera make up 79 %.
Orders and families are real names; most genera and all species epithets are made up, except
the genera Asteia, Nemorilla and Philaenus, whose tribes ``bioscan-dataset`` fixes. DNA barcodes
are 658 random nucleotides per species with a few substitutions per record, some ending in a
run of N. Images are small JPEGs in the packages' sizes (:data:`IMAGE_SIZES`), written for a
subset of the records.
"""

from __future__ import annotations

import io
import zipfile
from os import PathLike
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image, ImageDraw

from bioscan.prepare1m import CLIBD_FOLDER
from bioscan.spec1m import CLIBD_SPLITS, PARTITION_VALUES, TSV_COLUMNS, TSV_NAMES
from harness.atomic import atomic_path, write_bytes, write_text
from harness.errors import UnknownNameError
from harness.plugin import SAMPLE_MARKER

__all__ = ["IMAGE_SIZES", "LAYOUTS", "ORDER_COUNTS", "write_bioscan1m_sample"]

LAYOUTS = ("folders", "zip")

IMAGES_PER_PART = 10_000
"""Images per ``part<N>`` folder; the last part contains the rest (8,313 in the release)."""

ORDER_COUNTS = {
    "Diptera": 896_324, "Hymenoptera": 89_311, "Coleoptera": 47_328, "Hemiptera": 46_970,
    "Lepidoptera": 32_538, "Psocodea": 9_635, "Thysanoptera": 2_088, "Trichoptera": 1_296,
    "Orthoptera": 1_057, "Blattodea": 824, "Neuroptera": 676, "Ephemeroptera": 96,
    "Dermaptera": 66, "Archaeognatha": 63, "Plecoptera": 30, "Embioptera": 6,
}
"""Records per insect order, BIOSCAN-1M README (GitHub ``bioscan-ml/BIOSCAN-1M``)."""

DIPTERA_FAMILIES = (
    "Cecidomyiidae", "Sciaridae", "Chironomidae", "Phoridae", "Ceratopogonidae", "Psychodidae",
    "Mycetophilidae", "Chloropidae", "Sphaeroceridae", "Dolichopodidae", "Empididae",
    "Hybotidae", "Muscidae", "Agromyzidae", "Drosophilidae", "Anthomyiidae", "Tachinidae",
    "Culicidae", "Simuliidae", "Lauxaniidae", "Ephydridae", "Milichiidae", "Syrphidae",
    "Keroplatidae", "Limoniidae", "Tipulidae", "Scatopsidae", "Fanniidae", "Heleomyzidae",
    "Asteiidae", "Sarcophagidae", "Calliphoridae", "Pipunculidae", "Stratiomyidae",
    "Bibionidae", "Anisopodidae", "Lonchopteridae", "Opomyzidae", "Trichoceridae",
    "Canacidae", "Dixidae", "Chamaemyiidae", "Clusiidae", "Odiniidae",
)
"""Diptera families, most common first; the first 40 are the study families of the sample's
``*_diptera_family`` partitionings."""

STUDY_FAMILIES = 40
"""Diptera families of the family-classification task, BIOSCAN-1M paper."""

OTHER_FAMILIES = {
    "Hymenoptera": ("Braconidae", "Ichneumonidae", "Diapriidae", "Platygastridae",
                    "Formicidae"),
    "Coleoptera": ("Staphylinidae", "Chrysomelidae", "Curculionidae", "Ptiliidae"),
    "Hemiptera": ("Cicadellidae", "Aphididae", "Miridae", "Aphrophoridae"),
    "Lepidoptera": ("Gelechiidae", "Tortricidae", "Noctuidae", "Crambidae"),
    "Psocodea": ("Ectopsocidae", "Lachesillidae"), "Thysanoptera": ("Thripidae",),
    "Trichoptera": ("Hydroptilidae",), "Orthoptera": ("Gryllidae",),
    "Blattodea": ("Ectobiidae",), "Neuroptera": ("Hemerobiidae",),
    "Ephemeroptera": ("Baetidae",), "Dermaptera": ("Forficulidae",),
    "Archaeognatha": ("Machilidae",), "Plecoptera": ("Nemouridae",),
    "Embioptera": ("Oligotomidae",),
}

REAL_GENERA = {"Asteiidae": "Asteia", "Tachinidae": "Nemorilla", "Aphrophoridae": "Philaenus"}
"""Real genera placed in the sample: ``bioscan-dataset`` sets their tribes on load."""

GENERA_PER_FAMILY = 3
EPITHETS = ("minuta", "nigra", "borealis", "canadensis", "pallida")

MEDIUM_ROWS, SMALL_ROWS = 200_000, 50_000
"""Approximate records of the medium and small partitionings, BIOSCAN-1M paper."""

TRAIN_FRACTION, VALIDATION_FRACTION = 0.7, 0.1
"""Stratified split of each class: 70 % train, 10 % validation, the rest (20 %) test."""

BARCODE_LENGTH = 658
"""Length of a COI barcode of insects in nucleotides (Elbrecht et al., PeerJ 2019)."""

IMAGE_SIZES = {"original_256": (341, 256), "cropped_256": (291, 256), "original_full":
               (2880, 2160), "cropped": (1024, 768)}
"""Width and height in pixels per package. The 256 sizes were measured on the images of the
BIOSCAN-1M repository: original_256 is 341×256. The width of cropped_256 (like the size of
``cropped``) varies per image, from 279 to 375 px on those five, so the sample uses one size."""

CHUNK_ROWS = 100_000
"""Rows built and written at a time, which bounds the memory of a full-size sample."""

_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


def _taxonomy_tables() -> tuple[list[str], list[str], list[list[str]]]:
    """Return the order of each family, the families, and the genera of each family."""
    family_order, families, genera = [], [], []
    for order in ORDER_COUNTS:
        names = DIPTERA_FAMILIES if order == "Diptera" else OTHER_FAMILIES[order]
        for family in names:
            stem = family[:-4]
            own = [f"{stem}ia", f"{stem}omyia", f"{stem}ella"][:GENERA_PER_FAMILY]
            if family in REAL_GENERA:
                own[0] = REAL_GENERA[family]
            family_order.append(order)
            families.append(family)
            genera.append(own)
    return family_order, families, genera


def _stratified(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split the records of each group >= 0 70/10/20 %; return partition codes (-1 elsewhere).

    Codes index :data:`bioscan.spec1m.PARTITION_VALUES`: 0 train, 1 validation, 2 test.
    """
    codes = np.full(groups.shape, -1, dtype=np.int8)
    chosen = np.flatnonzero(groups >= 0)
    if chosen.size == 0:
        return codes
    order = chosen[np.lexsort((rng.random(chosen.size), groups[chosen]))]
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    sizes = np.diff(np.r_[starts, sorted_groups.size])
    start_of = np.repeat(starts, sizes)
    size_of = np.repeat(sizes, sizes)
    fraction = (np.arange(sorted_groups.size) - start_of) / size_of
    codes[order] = np.where(fraction < TRAIN_FRACTION, 0,
                            np.where(fraction < TRAIN_FRACTION + VALIDATION_FRACTION, 1, 2))
    return codes


def _subsample(codes: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Keep the partition of a random ``fraction`` of the partitioned records, else no_split."""
    keep = (codes >= 0) & (rng.random(codes.size) < fraction)
    return np.where(keep, codes, -1).astype(np.int8)


def _partitions(order: np.ndarray, family: np.ndarray, diptera_study: np.ndarray,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Return the six partitionings as codes into PARTITION_VALUES (-1 for no_split)."""
    diptera = order == 0
    large_family = _stratified(np.where(diptera_study, family, -1), rng)
    medium_rate = MEDIUM_ROWS / ORDER_COUNTS["Diptera"]
    small_rate = SMALL_ROWS / MEDIUM_ROWS
    medium_family = _subsample(large_family, medium_rate, rng)
    small_family = _subsample(medium_family, small_rate, rng)

    other = _stratified(np.where(diptera & (large_family >= 0), -1, order), rng)
    large_order = np.where(large_family >= 0, large_family, other).astype(np.int8)
    medium_other = _subsample(np.where(diptera & (large_family >= 0), -1, large_order),
                              medium_rate, rng)
    medium_order = np.where(medium_family >= 0, medium_family, medium_other).astype(np.int8)
    small_order = np.where(small_family >= 0, small_family,
                           _subsample(medium_other, small_rate, rng)).astype(np.int8)
    return {"large_diptera_family": large_family, "medium_diptera_family": medium_family,
            "small_diptera_family": small_family, "large_insect_order": large_order,
            "medium_insect_order": medium_order, "small_insect_order": small_order}


def _clibd_codes(species: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Assign every record one of the ten CLIBD partitions (codes into CLIBD_SPLITS).

    Records without a species are ``no_split``. Species are seen (80 %) or unseen (20 %). Seen
    records go to train_seen, seen_keys, val_seen or test_seen, and unseen records to
    val_unseen, val_unseen_keys, test_unseen or test_unseen_keys. This illustrates the file
    layout; it is not the CLIBD procedure, and single_species stays empty.
    """
    draw = rng.random(species.size)
    seen = (species * 2654435761 % 1000) < 800
    seen_codes = np.select([draw < 0.6, draw < 0.7, draw < 0.8], [1, 2, 4], default=7)
    unseen_codes = np.select([draw < 0.25, draw < 0.5, draw < 0.75], [5, 6, 8], default=9)
    codes = np.where(seen, seen_codes, unseen_codes)
    return np.where(species < 0, 0, codes).astype(np.int8)


def _barcodes(cluster: np.ndarray, rng: np.random.Generator, clusters: int,
              seed: int) -> list[str]:
    """Return a 658-nucleotide barcode per record: its cluster's template with substitutions."""
    templates = np.random.default_rng([seed, 1]).choice(_BASES, (clusters, BARCODE_LENGTH))
    sequences = templates[cluster]
    mutate = rng.random(sequences.shape) < 0.01
    sequences[mutate] = rng.choice(_BASES, int(mutate.sum()))
    tails = rng.random(cluster.size) < 0.1
    sequences[tails, BARCODE_LENGTH - 20:] = ord("N")
    return sequences.view(f"S{BARCODE_LENGTH}").ravel().astype(str).tolist()


def _jpeg(size: tuple[int, int], colour: tuple[int, int, int], seed: int) -> bytes:
    """Encode a JPEG of a light background with an ellipse (the specimen) in ``colour``."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, (232, 232, 228))
    draw = ImageDraw.Draw(image)
    w, h = size
    cx, cy = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.4, 0.6)
    rx, ry = w * rng.uniform(0.1, 0.25), h * rng.uniform(0.08, 0.2)
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _text(values: np.ndarray, names: list[str] | np.ndarray, known: np.ndarray) -> np.ndarray:
    table = np.asarray(list(names) + ["not_classified"], dtype=object)
    return table[np.where(known, values, len(table) - 1)]


def write_bioscan1m_sample(
    root: str | PathLike[str],
    *,
    rows: int = 400,
    seed: int = 0,
    images: int = 40,
    packages: tuple[str, ...] = ("cropped_256", "original_256"),
    layout: str = "folders",
    clibd: bool = False,
) -> Path:
    """Write a synthetic BIOSCAN-1M copy under ``root`` and return ``root``.

    Files: ``bioscan1m/BIOSCAN_Insect_Dataset_metadata.tsv``, the images of ``images`` random
    records per package in ``bioscan1m/images/<package>/part<N>/`` (``layout="folders"``) or in
    ``<package>.zip`` with members ``bioscan/images/<package>/part<N>/<image_file>``
    (``layout="zip"``, as on Zenodo), with ``clibd`` the ten CLIBD partition files and the two
    unions in ``bioscan1m/CLIBD_partitioning/``, and the ``FIELDHARNESS_SAMPLE`` marker.

    Args:
        root: Output folder.
        rows: Records; 1,128,313 gives a full-size TSV (about 1 GB, a minute or two).
        seed: Seed of every random draw; the same seed writes the same files.
        images: Records with images, per package.
        packages: Image packages to write.
        layout: ``"folders"`` or ``"zip"``.
        clibd: Also write CLIBD partition files.

    Raises:
        UnknownNameError: ``layout`` or a package is not known.
    """
    if layout not in LAYOUTS:
        raise UnknownNameError("sample layout", layout, LAYOUTS)
    for package in packages:
        if package not in IMAGE_SIZES:
            raise UnknownNameError("image package", package, IMAGE_SIZES)
    root = Path(root)
    folder = root / "bioscan1m"
    rng = np.random.default_rng(seed)
    family_order, families, genera = _taxonomy_tables()
    orders = list(ORDER_COUNTS)

    weights = np.array(list(ORDER_COUNTS.values()), dtype=float)
    order = rng.choice(len(orders), rows, p=weights / weights.sum())
    order_of_family = np.array([orders.index(name) for name in family_order])
    first_family = np.searchsorted(order_of_family, np.arange(len(orders)))
    family_count = np.bincount(order_of_family, minlength=len(orders))
    # Zipf-like weights within an order: the first family is the most common.
    position = np.floor(rng.random(rows) ** 2.5 * family_count[order]).astype(np.int64)
    family = first_family[order] + position
    diptera_study = (order == 0) & (position < STUDY_FAMILIES)

    family_known = rng.random(rows) >= 0.03
    subfamily_known = family_known & (rng.random(rows) < 0.3)
    tribe_known = subfamily_known & (rng.random(rows) < 0.3)
    genus_index = family * GENERA_PER_FAMILY + rng.integers(0, GENERA_PER_FAMILY, rows)
    is_real_genus = np.isin(np.array(sum(genera, []), dtype=object)[genus_index],
                            list(REAL_GENERA.values()))
    genus_known = family_known & ((rng.random(rows) < 0.25) | is_real_genus)
    epithet = rng.integers(0, len(EPITHETS), rows)
    species_known = (genus_known & (rng.random(rows) < 0.5)) | (
        family_known & ~genus_known & (rng.random(rows) < 0.02))
    species_code = np.where(species_known, genus_index * len(EPITHETS) + epithet, -1)
    bin_known = rng.random(rows) >= 0.05
    partitions = _partitions(order, family, diptera_study, rng)

    all_genera = [name for names in genera for name in names]
    species_names = [f"{g} {e}" for g in all_genera for e in EPITHETS]
    subfamilies = [f"{name[:-4]}inae" for name in families]
    tribes = [f"{name[:-4]}ini" for name in families]
    clusters = len(species_names) + len(families)
    cluster = np.where(species_known, species_code, len(species_names) + family)

    columns: dict[str, np.ndarray | list] = {
        "phylum": np.full(rows, "Arthropoda", dtype=object),
        "class": np.full(rows, "Insecta", dtype=object),
        "order": np.asarray(orders, dtype=object)[order],
        "family": _text(family, families, family_known),
        "subfamily": _text(family, subfamilies, subfamily_known),
        "tribe": _text(family, tribes, tribe_known),
        "genus": _text(genus_index, all_genera, genus_known),
        "species": _text(np.maximum(species_code, 0), species_names, species_known),
        "subspecies": np.full(rows, "not_classified", dtype=object),
    }
    name = columns["order"].copy()
    for rank in ("family", "subfamily", "tribe", "genus", "species"):
        name = np.where(columns[rank] != "not_classified", columns[rank], name)
    index = np.arange(rows)
    plate, well = 10_000 + index // 96, index % 96
    frame = pl.DataFrame({
        "plate": plate, "row": well // 12, "col": well % 12 + 1, "index": index,
        "cluster": cluster, "bin_known": bin_known,
    }).select(
        sampleid=pl.format("BIOUG{}-{}{}", "plate",
                           pl.col("row").replace_strict(list(range(8)), list("ABCDEFGH"),
                                                        return_dtype=pl.String),
                           pl.col("col").cast(pl.String).str.zfill(2)),
        processid=pl.format("BSCAN{}-21", (pl.col("index") + 1).cast(pl.String).str.zfill(7)),
        uri=pl.when("bin_known").then(pl.format("BOLD:AC{}", pl.col("cluster").cast(pl.String)
                                                .str.zfill(5))).otherwise(pl.lit("not_classified")),
        numeric=pl.col("index") % 10 == 9,
        index=pl.col("index"),
    )
    image_file = pl.when(frame["numeric"]).then(
        pl.format("{}.jpg", (frame["index"] + 5_000_000).cast(pl.String))).otherwise(
        pl.format("{}.jpg", frame["sampleid"]))
    frame = frame.with_columns(image_file=image_file).drop("numeric", "index")
    frame = frame.with_columns(name=pl.Series(name, dtype=pl.String),
                               **{k: pl.Series(v, dtype=pl.String) for k, v in columns.items()})
    values = np.array(PARTITION_VALUES[:3] + ("no_split",), dtype=object)
    frame = frame.with_columns(
        chunk_number=pl.Series(index // IMAGES_PER_PART + 1, dtype=pl.Int16),
        copyright_license=pl.lit("CreativeCommons - Attribution"),
        copyright_holder=pl.lit("CBG Photography Group"),
        copyright_institution=pl.lit("Centre for Biodiversity Genomics"),
        copyright_contact=pl.lit(None, pl.String),
        photographer=pl.lit("CBG Photography Group"),
        author=pl.lit("CBG Photography Group"),
        **{k: pl.Series(values[v], dtype=pl.String) for k, v in partitions.items()},
    )

    tsv = folder / TSV_NAMES[0]
    tsv.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(tsv) as tmp, tmp.open("wb") as handle:
        for start in range(0, max(rows, 1), CHUNK_ROWS):
            stop = min(rows, start + CHUNK_ROWS)
            part = frame.slice(start, stop - start).with_columns(nucraw=pl.Series(
                _barcodes(cluster[start:stop], rng, clusters, seed), dtype=pl.String))
            part.select(list(TSV_COLUMNS)).write_csv(
                handle, separator="\t", include_header=start == 0, quote_style="never",
                null_value="")

    chosen = np.sort(rng.choice(rows, min(images, rows), replace=False))
    _write_images(root, frame, chosen, order, packages, layout, seed)
    if clibd:
        _write_clibd(folder / CLIBD_FOLDER, frame["sampleid"], _clibd_codes(species_code, rng))
    write_text(root / SAMPLE_MARKER, "Synthetic BIOSCAN-1M sample written by fieldharness.\n")
    return root


def _write_images(root: Path, frame: pl.DataFrame, chosen: np.ndarray, order: np.ndarray,
                  packages: tuple[str, ...], layout: str, seed: int) -> None:
    palette = [(60 + 11 * k % 150, 40 + 23 * k % 120, 30 + 37 * k % 100) for k in range(16)]
    files = frame["image_file"].to_list()
    chunks = frame["chunk_number"].to_list()
    for package in packages:
        members = {}
        for i in chosen.tolist():
            relative = f"{package}/part{chunks[i]}/{files[i]}"
            members[relative] = _jpeg(IMAGE_SIZES[package], palette[order[i]], seed * 7919 + i)
        if layout == "folders":
            for relative, data in members.items():
                write_bytes(root / "bioscan1m" / "images" / relative, data)
            continue
        with atomic_path(root / f"{package}.zip") as tmp:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
                for relative, data in members.items():
                    archive.writestr(f"bioscan/images/{relative}", data)


def _write_clibd(folder: Path, sampleids: pl.Series, codes: np.ndarray) -> None:
    ids = np.asarray(sampleids.to_list(), dtype=object)
    lists = {name: ids[codes == k].tolist() for k, name in enumerate(CLIBD_SPLITS)}
    lists["all_keys"] = lists["seen_keys"] + lists["val_unseen_keys"] + lists["test_unseen_keys"]
    lists["no_split_and_seen_train"] = lists["no_split"] + lists["train_seen"]
    for name, values in lists.items():
        write_text(folder / f"{name}.txt", "".join(f"{v}\n" for v in values))
