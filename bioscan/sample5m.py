"""Generator of synthetic BIOSCAN-5M data in the official layout, from 8 rows to full size.

It writes ``bioscan5m/metadata/csv/BIOSCAN_5M_Insect_Dataset_metadata.csv`` with the 23
columns in the official order, JPEG images for a chosen subset of the records (extracted
folders or the official zips) and the sample marker. The metadata imitates the real file:

* partitions in the proportions of the release (exactly its counts at 5,150,850 rows), each
  partition at least once; ``pretrain`` records have no species, every other record has one;
* a taxonomy of phylum Arthropoda with 10 classes, 55 orders, 934 families, 1,542 subfamilies
  and 7,605 genera (real names for the common ones, Latin-like made-up names for the rest),
  Diptera about 71 % and Insecta about 98 % of records, and each rank labelled for the
  fraction of records the BIOSCAN-5M README's label table gives (class 99.9 % ... species
  9.2 %), the ranks below the deepest labelled one empty;
* scientific species names in train, val and test, placeholder names (``Genus sp. CODE``) in
  the unseen partitions (of genera seen in train) and in other_heldout;
* one BOLD BIN per hidden species (99.7 % of records have one), and COI barcodes of about
  658 nucleotides, similar within genera and families, AT-rich, with trailing ``N`` runs on a
  few and repeated across records of a species (about half of the barcodes unique);
* processids ``<project code><number>-<year>`` (``GMMVA27218-22``), sampleids of plate and well
  (``BIOUG89861-E08``), collection sites in 30 countries, specimen sizes, and the ``chunk`` of
  the md5 rule.

The record-level draws are made for the whole file at once with numpy; the text columns and
barcodes are built and written in chunks of rows: the full size takes about 45 s and 1.5 GB
of memory on two CPU cores.
"""

from __future__ import annotations

import io
import logging
import math
import zipfile
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from PIL import Image

from bioscan.images import PACKAGES, chunk_series, image_relative_path
from bioscan.spec import CSV_RELATIVE_PATH, METADATA_COLUMNS, SPLIT_ROWS, TOTAL_ROWS
from bioscan.splits import SPLITS
from harness.atomic import atomic_path, write_text
from harness.errors import UnknownNameError
from harness.plugin import SAMPLE_MARKER

__all__ = ["LAYOUTS", "LABEL_COUNTS", "split_counts", "write_bioscan5m_sample"]

logger = logging.getLogger(__name__)

LAYOUTS = ("folders", "zip")

LABEL_COUNTS: dict[str, int] = {
    "class": 5_146_837,
    "order": 5_134_987,
    "family": 4_932_774,
    "subfamily": 1_472_548,
    "genus": 1_226_765,
    "species": 473_094,
    "dna_bin": 5_137_441,
}
"""Labelled records per rank in the release (BIOSCAN-5M ``BIOSCAN_DATASET/README.md``)."""

SPECIES_PER_POOL = {"seen": 11_846, "unseen": 914, "heldout": 9_862}
"""Species of train (seen), key_unseen (unseen) and other_heldout in the release; they sum to
the 22,622 species of the label table."""

BINS = 324_411
"""BOLD BINs in the release; the sample has one hidden species per BIN."""

TAXA_COUNTS = {"family": 934, "subfamily": 1_542, "genus": 7_605}

CHUNK_ROWS = 200_000
"""Rows built and written at a time."""

BARCODE_WIDTH = 720
"""Longest barcode the generator writes, in nucleotides."""

# --- taxonomy ---------------------------------------------------------------------------------

CLASS_ORDERS: dict[str, tuple[str, ...]] = {
    "Insecta": (
        "Diptera", "Hymenoptera", "Hemiptera", "Coleoptera", "Lepidoptera", "Psocodea",
        "Thysanoptera", "Trichoptera", "Orthoptera", "Blattodea", "Neuroptera", "Ephemeroptera",
        "Dermaptera", "Archaeognatha", "Plecoptera", "Embioptera", "Odonata", "Mantodea",
        "Strepsiptera", "Raphidioptera", "Megaloptera", "Mecoptera", "Siphonaptera",
        "Zoraptera", "Zygentoma", "Phasmida", "Mantophasmatodea", "Grylloblattodea",
    ),
    "Arachnida": (
        "Trombidiformes", "Araneae", "Sarcoptiformes", "Mesostigmata", "Opiliones",
        "Pseudoscorpiones", "Ixodida", "Scorpiones", "Opilioacarida", "Solifugae", "Schizomida",
    ),
    "Collembola": ("Entomobryomorpha", "Symphypleona", "Poduromorpha", "Neelipleona"),
    "Malacostraca": ("Isopoda", "Amphipoda", "Decapoda"),
    "Diplopoda": ("Polydesmida", "Julida", "Chordeumatida"),
    "Chilopoda": ("Lithobiomorpha", "Geophilomorpha"),
    "Branchiopoda": ("Diplostraca",),
    "Ostracoda": ("Podocopida",),
    "Protura": ("Acerentomata",),
    "Hexanauplia": ("Cyclopoida",),
}
"""The 10 classes and 55 orders, each class's orders from most to least common."""

ORDER_SHARE = {
    "Diptera": 0.7135, "Hymenoptera": 0.14, "Hemiptera": 0.045, "Coleoptera": 0.032,
    "Lepidoptera": 0.021, "Psocodea": 0.009, "Thysanoptera": 0.004, "Trichoptera": 0.002,
    "Trombidiformes": 0.006, "Araneae": 0.004, "Sarcoptiformes": 0.002,
    "Entomobryomorpha": 0.004, "Symphypleona": 0.0015,
}
"""Approximate share of records of the common orders (Diptera from the order imbalance ratio
of the label table); the other orders share the rest, each 0.8 times the one before, so that
the rarest have a record or two at full size."""

REAL_FAMILIES = {
    "Diptera": ("Cecidomyiidae", "Sciaridae", "Chironomidae", "Phoridae", "Ceratopogonidae",
                "Psychodidae", "Chloropidae", "Mycetophilidae", "Dolichopodidae", "Empididae",
                "Agromyzidae", "Drosophilidae", "Scatopsidae", "Muscidae", "Tachinidae"),
    "Hymenoptera": ("Platygastridae", "Diapriidae", "Braconidae", "Scelionidae", "Mymaridae",
                    "Ichneumonidae", "Eulophidae", "Ceraphronidae", "Encyrtidae", "Formicidae"),
    "Hemiptera": ("Cicadellidae", "Psyllidae", "Miridae", "Aphididae", "Delphacidae"),
    "Coleoptera": ("Staphylinidae", "Curculionidae", "Chrysomelidae", "Phalacridae",
                   "Cantharidae", "Scraptiidae", "Carabidae"),
    "Lepidoptera": ("Gelechiidae", "Tortricidae", "Nepticulidae", "Elachistidae",
                    "Cosmopterigidae", "Geometridae", "Crambidae", "Noctuidae"),
}
"""Common families of the five largest orders, as BIOSCAN records show them."""

REAL_GENERA = {
    "Phoridae": ("Megaselia",), "Sciaridae": ("Bradysia",), "Braconidae": ("Neoneurus",),
    "Miridae": ("Phoenicocoris", "Mecomma"), "Cicadellidae": ("Tylozygus",),
    "Gelechiidae": ("Tuta",), "Nepticulidae": ("Ectoedemia",), "Elachistidae": ("Elachista",),
    "Tortricidae": ("Gatesclarkeana",), "Scraptiidae": ("Anaspis",),
}

_SYLLABLES = (
    "ab ac ad al am an ar as at ba be bo ca ce cho co cra da de di do dra el em en er es eu ga "
    "ge glo go gra ha he hy ia il in io is la le li lo lu ly ma me mi mo my na ne no ny ob oc od "
    "ol om on op or os pa pe phy pla po pro psa pte ra re rhi ri ro ru sa sca se si so spa sta "
    "ta te tha ti to tri ty ul ur va ve xe za ze"
).split()
_GENUS_ENDINGS = ("a", "us", "ia", "ella", "ops", "ix", "on", "es", "ina", "oides", "omyia")
_EPITHET_ENDINGS = ("a", "us", "um", "is", "ensis", "ii", "ata", "ella", "icus", "ae")

# --- places -----------------------------------------------------------------------------------

COUNTRIES: tuple[tuple[str, float, float, float, tuple[str, ...]], ...] = (
    ("Canada", 0.22, 50.0, -100.0, ("Ontario", "British Columbia", "Quebec", "Alberta",
                                    "Yukon Territory", "Nova Scotia", "Manitoba")),
    ("Costa Rica", 0.12, 10.0, -84.0, ("Guanacaste", "Puntarenas", "Alajuela", "Limon")),
    ("United States", 0.06, 38.0, -100.0, ("California", "Texas", "Florida", "Alaska",
                                           "Arizona")),
    ("South Africa", 0.06, -29.0, 25.0, ("KwaZulu-Natal", "Western Cape", "Limpopo")),
    ("Thailand", 0.05, 15.0, 101.0, ("Nakhon Ratchasima", "Chiang Mai", "Nan")),
    ("Pakistan", 0.04, 31.0, 72.0, ("Azad Kashmir", "Punjab", "Khyber Pakhtunkhwa")),
    ("Australia", 0.04, -27.0, 135.0, ("Western Australia", "Queensland", "Victoria")),
    ("Argentina", 0.03, -30.0, -64.0, ("Jujuy", "Misiones", "Tucuman")),
    ("Ecuador", 0.03, -1.0, -78.5, ("Pichincha", "Napo")),
    ("Mexico", 0.03, 20.0, -99.0, ("Veracruz", "Oaxaca", "Chiapas")),
    ("Bangladesh", 0.02, 23.5, 90.3, ("Chittagong", "Dhaka")),
    ("Vietnam", 0.02, 16.0, 107.0, ("Ninh Binh", "Lam Dong")),
    ("Peru", 0.02, -10.0, -75.0, ("Cuzco", "Madre de Dios")),
    ("Colombia", 0.02, 4.0, -74.0, ("Huila", "Antioquia")),
    ("Ghana", 0.02, 7.5, -1.0, ("Volta", "Ashanti")),
    ("Tanzania", 0.02, -6.0, 35.0, ("Simiyu", "Arusha")),
    ("Finland", 0.02, 63.0, 26.0, ()),
    ("Sweden", 0.02, 60.0, 16.0, ()),
    ("Norway", 0.01, 64.0, 12.0, ("Nordland", "Troms")),
    ("Portugal", 0.01, 40.0, -8.0, ("Braganca", "Faro")),
    ("Egypt", 0.01, 28.0, 31.0, ("Qalyubia", "Giza")),
    ("New Zealand", 0.01, -41.0, 173.0, ("Nelson", "Canterbury")),
    ("Philippines", 0.01, 10.0, 123.0, ("Lanao del Norte", "Laguna")),
    ("Suriname", 0.01, 4.5, -55.5, ("Paramaribo",)),
    ("Lebanon", 0.01, 34.0, 35.8, ()),
    ("Madagascar", 0.01, -19.0, 47.0, ("Antananarivo",)),
    ("Kenya", 0.01, 0.0, 37.5, ("Nairobi", "Kakamega")),
    ("Brazil", 0.01, -12.0, -50.0, ("Amazonas", "Parana")),
    ("Germany", 0.01, 51.0, 10.0, ("Bavaria",)),
    ("Malaysia", 0.01, 4.0, 102.0, ("Sabah", "Pahang")),
)
"""Country, share of sites, rough centre (latitude, longitude) and provinces; a country
without provinces leaves province_state empty, as Finland and Lebanon do in real records."""

PROJECT_CODES_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


# --- helpers ----------------------------------------------------------------------------------


def split_counts(rows: int) -> dict[str, int]:
    """Return the records per partition for a sample of ``rows`` records.

    The release's proportions, rounded by largest remainder, with every partition at least
    once (taken from ``pretrain``). At 5,150,850 rows these are the release's counts.

    Raises:
        ValueError: ``rows`` is below 8 (one record per partition).
    """
    if rows < len(SPLITS):
        raise ValueError(f"rows is {rows}; a sample needs at least {len(SPLITS)}, one per "
                         "partition")
    exact = {split: rows * count / TOTAL_ROWS for split, count in SPLIT_ROWS.items()}
    counts = {split: math.floor(value) for split, value in exact.items()}
    order = sorted(SPLITS, key=lambda s: (counts[s] - exact[s], SPLITS.index(s)))
    for split in order[: rows - sum(counts.values())]:
        counts[split] += 1
    for split in SPLITS:
        if counts[split] == 0:
            counts[split] = 1
            counts["pretrain"] -= 1
    return counts


def _scaled(published: int, rows: int, minimum: int = 2) -> int:
    """Scale a count of the release to a sample of ``rows`` records (sub-linearly, so that small
    samples still repeat labels)."""
    fraction = min(1.0, rows / TOTAL_ROWS)
    return max(minimum, min(published, round(published * fraction ** 0.75)))


def _zipf(count: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Return Zipf-like probabilities over ``count`` items in random order."""
    weights = 1.0 / np.arange(1, count + 1) ** exponent
    return rng.permutation(weights / weights.sum())


def _allocate(total: int, weights: np.ndarray, minimum: int = 1) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights``, each at least ``minimum``."""
    spare = total - minimum * len(weights)
    exact = weights / weights.sum() * spare
    counts = np.floor(exact).astype(np.int64)
    remainder = spare - counts.sum()
    counts[np.argsort(counts - exact, kind="stable")[:remainder]] += 1
    return counts + minimum


def _latin(rng: np.random.Generator, syllables: tuple[int, int], endings: tuple[str, ...]) -> str:
    parts = rng.choice(_SYLLABLES, size=int(rng.integers(*syllables)))
    return "".join(parts) + str(rng.choice(endings))


def _unique_names(count: int, make, taken: set[str]) -> list[str]:
    names = []
    while len(names) < count:
        name = make()
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def _splitmix(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a cheap, well-mixed hash of uint64 values."""
    z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


# --- the synthetic world ----------------------------------------------------------------------


@dataclass
class _Taxonomy:
    """Names and parent links of every taxon, and each genus's sampling weight."""

    class_names: list[str]
    order_names: list[str]
    order_class: np.ndarray
    family_names: list[str]
    family_order: np.ndarray
    subfamily_names: list[str]
    subfamily_family: np.ndarray
    genus_names: list[str]
    genus_family: np.ndarray
    genus_subfamily: np.ndarray
    """Index of the genus's subfamily, -1 for genera of families without subfamilies."""
    genus_weight: np.ndarray
    family_base: np.ndarray
    """Reference barcode of each family (uint8 codes 0-3 for A, C, G, T)."""


def _order_weights() -> tuple[list[str], list[int], np.ndarray]:
    names, classes, weights = [], [], []
    for class_index, orders in enumerate(CLASS_ORDERS.values()):
        for order in orders:
            names.append(order)
            classes.append(class_index)
            weights.append(ORDER_SHARE.get(order, 0.0))
    weights = np.array(weights)
    rest = 1.0 - weights.sum()
    missing = np.flatnonzero(weights == 0)
    decay = 0.8 ** np.arange(len(missing))
    weights[missing] = rest * decay / decay.sum()
    return names, classes, weights


def _random_bases(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # COI is AT-rich: about 31 % A, 15 % C, 15 % G, 39 % T in insects.
    return rng.choice(4, size=shape, p=(0.31, 0.15, 0.15, 0.39)).astype(np.uint8)


def _mutate(rng: np.random.Generator, bases: np.ndarray, rate: float) -> np.ndarray:
    out = bases.copy()
    hit = rng.random(out.shape) < rate
    out[hit] = rng.integers(0, 4, size=int(hit.sum()), dtype=np.uint8)
    return out


def _build_taxonomy(rng: np.random.Generator) -> _Taxonomy:
    order_names, order_class, order_weight = _order_weights()
    taken = set(order_names) | set(CLASS_ORDERS)

    # Families per order grow with the order's share; real names first.
    per_order = _allocate(TAXA_COUNTS["family"], order_weight ** 0.35)
    family_names: list[str] = []
    family_order: list[int] = []
    family_weight: list[float] = []
    for order_index, count in enumerate(per_order):
        real = list(REAL_FAMILIES.get(order_names[order_index], ()))[:count]
        taken.update(real)
        made = _unique_names(count - len(real), lambda: _latin(rng, (2, 4), ("idae",)).title(),
                             taken)
        shares = 1.0 / np.arange(1, count + 1) ** 1.2
        family_names += real + made
        family_order += [order_index] * count
        family_weight += list(order_weight[order_index] * shares / shares.sum())
    family_weight_arr = np.array(family_weight)
    family_order_arr = np.array(family_order)

    # About half of the families (the larger ones more often) are divided into subfamilies.
    divided = rng.random(len(family_names)) < np.clip(0.35 + 2 * family_weight_arr ** 0.3, 0, 1)
    divided_index = np.flatnonzero(divided)
    per_family = _allocate(TAXA_COUNTS["subfamily"], family_weight_arr[divided_index] ** 0.4)
    subfamily_names: list[str] = []
    subfamily_family: list[int] = []
    for family_index, count in zip(divided_index, per_family, strict=True):
        stem = family_names[family_index].removesuffix("idae")
        names = [f"{stem}inae"] if stem + "inae" not in taken else []
        taken.update(names)
        if count > 1 and rng.random() < 0.3:
            names.append(f"unassigned {family_names[family_index]}")
        names += _unique_names(count - len(names),
                               lambda: _latin(rng, (2, 4), ("inae",)).title(), taken)
        subfamily_names += names[:count]
        subfamily_family += [int(family_index)] * count
    subfamily_family_arr = np.array(subfamily_family)

    # Genera per family grow with the family's share; a genus of a divided family belongs to
    # one of its subfamilies.
    per_family = _allocate(TAXA_COUNTS["genus"], family_weight_arr ** 0.4)
    genus_names: list[str] = []
    genus_family: list[int] = []
    genus_subfamily: list[int] = []
    genus_weight: list[float] = []
    first_subfamily = {int(f): i for i, f in reversed(list(enumerate(subfamily_family)))}
    subfamily_count = np.bincount(subfamily_family_arr, minlength=len(family_names))
    for family_index, count in enumerate(per_family):
        real = list(REAL_GENERA.get(family_names[family_index], ()))[:count]
        taken.update(real)
        made = _unique_names(count - len(real),
                             lambda: _latin(rng, (2, 4), _GENUS_ENDINGS).title(), taken)
        shares = 1.0 / np.arange(1, count + 1) ** 1.1
        genus_names += real + made
        genus_family += [family_index] * count
        genus_weight += list(family_weight_arr[family_index] * shares / shares.sum())
        if subfamily_count[family_index]:
            start = first_subfamily[family_index]
            picks = rng.integers(0, subfamily_count[family_index], size=count)
            genus_subfamily += list(start + picks)
        else:
            genus_subfamily += [-1] * count

    order_base = _random_bases(rng, (len(order_names), BARCODE_WIDTH))
    family_base = _mutate(rng, order_base[family_order_arr], 0.15)
    return _Taxonomy(
        class_names=list(CLASS_ORDERS),
        order_names=order_names,
        order_class=np.array(order_class),
        family_names=family_names,
        family_order=family_order_arr,
        subfamily_names=subfamily_names,
        subfamily_family=subfamily_family_arr,
        genus_names=genus_names,
        genus_family=np.array(genus_family),
        genus_subfamily=np.array(genus_subfamily),
        genus_weight=np.array(genus_weight),
        family_base=family_base,
    )


@dataclass
class _Species:
    """The hidden species (one per BIN): genus, name (None for unnamed) and BIN, the species
    of each pool with their shares of records, and each genus's reference barcode."""

    genus: np.ndarray
    names: list[str | None]
    bins: list[str]
    pools: dict[str, np.ndarray]
    """Indices of the species of each pool: seen, unseen, heldout, unnamed."""
    weights: dict[str, np.ndarray]
    genus_base: np.ndarray


def _bin_codes(rng: np.random.Generator, count: int) -> list[str]:
    # BINs look like BOLD:AAA0000 to BOLD:AFZ9999, as in the release.
    numbers = rng.choice(6 * 26 * 10_000, size=count, replace=False)
    second, rest = np.divmod(numbers, 26 * 10_000)
    third, digits = np.divmod(rest, 10_000)
    return [f"BOLD:A{chr(65 + s)}{chr(65 + t)}{d:04d}"
            for s, t, d in zip(second, third, digits, strict=True)]


def _build_species(rng: np.random.Generator, taxonomy: _Taxonomy, rows: int) -> _Species:
    sizes = {pool: _scaled(count, rows) for pool, count in SPECIES_PER_POOL.items()}
    named = sum(sizes.values())
    sizes["unnamed"] = max(_scaled(BINS, rows) - named, 4)
    total = sum(sizes.values())

    genus_p = taxonomy.genus_weight / taxonomy.genus_weight.sum()
    genus = rng.choice(len(genus_p), size=total, p=genus_p)
    bounds = np.cumsum([0, *sizes.values()])
    pools = {pool: np.arange(bounds[i], bounds[i + 1]) for i, pool in enumerate(sizes)}
    # In large samples every genus has an unnamed species, so that rare taxa occur at all.
    if sizes["unnamed"] >= 4 * len(genus_p):
        genus[pools["unnamed"][: len(genus_p)]] = rng.permutation(len(genus_p))

    # Unseen species are placeholders of genera that have seen species.
    seen_genera = np.unique(genus[pools["seen"]])
    genus[pools["unseen"]] = rng.choice(seen_genera, size=sizes["unseen"])

    # A species' share of records: its genus's share split among the genus's species, times a
    # heavy-tailed factor, which gives the largest BINs tens of thousands of records at full
    # size (the release's largest BIN has 35,458).
    per_genus = np.bincount(genus, minlength=len(genus_p))
    share = genus_p[genus] / per_genus[genus] * np.exp(rng.normal(0.0, 2.0, size=total))

    names: list[str | None] = [None] * total
    taken: set[str] = set()
    for index in pools["seen"]:
        stem = taxonomy.genus_names[genus[index]]
        names[index] = _unique_names(
            1, lambda s=stem: f"{s} {_latin(rng, (2, 4), _EPITHET_ENDINGS)}", taken)[0]
    for pool in ("unseen", "heldout"):
        for index in pools[pool]:
            stem = taxonomy.genus_names[genus[index]]
            names[index] = _unique_names(
                1, lambda s=stem: f"{s} sp. {_placeholder(rng)}", taken)[0]

    genus_base = _mutate(rng, taxonomy.family_base[taxonomy.genus_family], 0.08)
    weights = {pool: share[members] / share[members].sum() for pool, members in pools.items()}
    return _Species(genus=genus, names=names, bins=_bin_codes(rng, total), pools=pools,
                    weights=weights, genus_base=genus_base)


def _placeholder(rng: np.random.Generator) -> str:
    letters = "".join(rng.choice(list(PROJECT_CODES_LETTERS), size=int(rng.integers(2, 5))))
    return f"{int(rng.integers(1, 100))}{letters}"


@dataclass
class _Sites:
    country: list[str]
    province: list[str | None]
    lat: np.ndarray
    lon: np.ndarray
    weight: np.ndarray


def _build_sites(rng: np.random.Generator, rows: int) -> _Sites:
    count = _scaled(1_650, rows, minimum=5)
    share = np.array([entry[1] for entry in COUNTRIES])
    country_index = rng.choice(len(COUNTRIES), size=count, p=share / share.sum())
    countries, provinces, lats, lons = [], [], [], []
    for index in country_index:
        name, _, lat, lon, names = COUNTRIES[index]
        countries.append(name)
        provinces.append(str(rng.choice(names)) if names and rng.random() > 0.03 else None)
        decimals = int(rng.choice([3, 3, 3, 4, 5, 6]))
        lats.append(round(float(np.clip(lat + rng.normal(0, 2.5), -89, 89)), decimals))
        lons.append(round(float((lon + rng.normal(0, 3.5) + 180) % 360 - 180), decimals))
    lat_arr, lon_arr = np.array(lats), np.array(lons)
    unknown = rng.random(count) < 0.01
    lat_arr[unknown] = np.nan
    lon_arr[unknown] = np.nan
    return _Sites(countries, provinces, lat_arr, lon_arr, _zipf(count, 0.9, rng))


def _project_codes(rng: np.random.Generator, count: int) -> list[str]:
    letters = np.array(list(PROJECT_CODES_LETTERS))
    taken: set[str] = set()
    return _unique_names(
        count, lambda: "".join(rng.choice(letters, size=int(rng.choice([4, 5, 5, 5])))), taken)


# --- records ----------------------------------------------------------------------------------

DEPTHS = ("phylum", "class", "order", "family", "genus", "species")


def _pretrain_depth_p() -> np.ndarray:
    """Probability of each deepest labelled rank among pretrain records, from the label table."""
    species = LABEL_COUNTS["species"]
    reached = [TOTAL_ROWS, LABEL_COUNTS["class"], LABEL_COUNTS["order"], LABEL_COUNTS["family"],
               LABEL_COUNTS["genus"], species]
    pretrain = np.array([reached[i] - reached[i + 1] for i in range(5)], dtype=float)
    return pretrain / pretrain.sum()


def _ranks_within(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return a random rank 0, 1, ... of each item within its group."""
    order = np.lexsort((rng.random(len(groups)), groups))
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    lengths = np.diff(np.r_[starts, len(groups)])
    ranks = np.empty(len(groups), dtype=np.int64)
    ranks[order] = np.arange(len(groups)) - np.repeat(starts, lengths)
    return ranks


def _records(rng: np.random.Generator, rows: int, species: _Species,
             taxonomy: _Taxonomy, sites: _Sites) -> pl.DataFrame:
    """Draw every record's integer attributes; strings are built later, chunk by chunk."""
    counts = split_counts(rows)
    split_code = np.repeat(np.arange(len(SPLITS), dtype=np.int8), list(counts.values()))
    rng.shuffle(split_code)

    pool_of = {"pretrain": "unnamed", "train": "seen", "val": "seen", "test": "seen",
               "key_unseen": "unseen", "val_unseen": "unseen", "test_unseen": "unseen",
               "other_heldout": "heldout"}
    otu = np.empty(rows, dtype=np.int64)
    for code, split in enumerate(SPLITS):
        where = np.flatnonzero(split_code == code)
        pool = pool_of[split]
        otu[where] = rng.choice(species.pools[pool], size=len(where), p=species.weights[pool])

    depth = np.full(rows, 5, dtype=np.int8)
    pretrain = np.flatnonzero(split_code == 0)
    depth[pretrain] = rng.choice(5, size=len(pretrain), p=_pretrain_depth_p())

    # Subfamily: shown from genus down when the genus has one, and for some family-level
    # records; that share is set so that the labelled fraction matches the label table.
    has_subfamily = taxonomy.genus_subfamily[species.genus[otu]] >= 0
    certain = has_subfamily & (depth >= 4)
    possible = has_subfamily & (depth == 3)
    target = rows * LABEL_COUNTS["subfamily"] / TOTAL_ROWS
    share = float(np.clip((target - certain.sum()) / max(possible.sum(), 1), 0.0, 1.0))
    show_subfamily = certain | (possible & (rng.random(rows) < share))

    # Haplotypes: within a species and partition, 0.8 barcode variants per record, drawn
    # uniformly, which leaves about half of all barcodes distinct.
    frame = pl.DataFrame({"otu": otu, "split": split_code})
    group_size = frame.select(pl.len().over("otu", "split")).to_series().to_numpy()
    variants = np.maximum(1, np.round(0.8 * group_size)).astype(np.int64)
    haplotype = np.floor(rng.random(rows) * variants).astype(np.int64)

    n_projects = _scaled(2_500, rows, minimum=3)
    project = rng.choice(n_projects, size=rows, p=_zipf(n_projects, 0.8, rng))
    index_1m = np.full(rows, -1, dtype=np.int64)
    in_1m = np.flatnonzero(rng.random(rows) < 1_128_313 / TOTAL_ROWS)
    index_1m[in_1m] = rng.choice(1_128_313, size=len(in_1m), replace=False)

    size = np.exp(rng.normal(np.log(20_000), 0.9, size=rows))
    area_fraction = np.clip(size / 786_432 * rng.uniform(2.0, 4.0, size=rows), 0.002, 0.95)
    scale_steps = np.clip(np.round(np.sqrt(area_fraction) * 2.4 * 256
                                   * np.exp(rng.normal(0, 0.1, size=rows))), 20, 1000)

    return pl.DataFrame({
        "split": split_code,
        "otu": otu,
        "depth": depth,
        "show_subfamily": show_subfamily,
        "haplotype": haplotype,
        "site": rng.choice(len(sites.weight), size=rows, p=sites.weight),
        "project": project,
        "project_rank": _ranks_within(project, rng),
        "plate_well": rng.permutation(rows).astype(np.int64),
        "no_bin": rng.random(rows) < 1 - LABEL_COUNTS["dna_bin"] / TOTAL_ROWS,
        "image_measurement_value": np.round(size).astype(np.int64),
        "area_fraction": np.round(area_fraction, 4),
        "scale_factor": np.round(scale_steps / 256, 4),
        "inferred_ranks": rng.choice(5, size=rows, p=(0.95, 0.01, 0.02, 0.01, 0.01)).astype(
            np.int16),
        "index_1m": index_1m,
    })


def _barcodes(chunk: pl.DataFrame, species: _Species, seed: int) -> pa.StringArray:
    """Return the barcode of each record: its genus's reference with the species' and the
    haplotype's own changes, a length around 658 and, for a few, a trailing run of N."""
    otu = chunk["otu"].to_numpy()
    key = (otu.astype(np.uint64) * np.uint64(1_000_003)
           + chunk["split"].to_numpy().astype(np.uint64) * np.uint64(7_919)
           + chunk["haplotype"].to_numpy().astype(np.uint64)
           + np.uint64(seed) * np.uint64(0x51ED27))
    h = [_splitmix(key + np.uint64(i)) for i in range(4)]
    s = [_splitmix(otu.astype(np.uint64) * np.uint64(31) + np.uint64(seed) + np.uint64(i))
         for i in range(2)]
    n = len(otu)
    codes = species.genus_base[species.genus[otu]]
    rows = np.arange(n)

    # Species differ from their genus's reference at about 24 fixed positions.
    for step in range(24):
        mix = _splitmix(s[step % 2] + np.uint64(step * 977))
        codes[rows, (mix % np.uint64(BARCODE_WIDTH)).astype(np.int64)] = (
            (mix >> np.uint64(20)) & np.uint64(3)).astype(np.uint8)
    # Haplotypes differ from their species at 0 to 3 positions.
    changes = (h[0] >> np.uint64(60)) % np.uint64(4)
    for step in range(3):
        mix = _splitmix(h[1] + np.uint64(step * 131))
        where = changes > np.uint64(step)
        positions = (mix % np.uint64(658)).astype(np.int64)
        codes[rows[where], positions[where]] = ((mix >> np.uint64(24)) & np.uint64(3)).astype(
            np.uint8)[where]

    # Length: mostly 650-660, some short reads and some longer than 660.
    u = (h[2] >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    length = np.where(u < 0.8, 658 - (h[2] % np.uint64(9)).astype(np.int64),
                      np.where(u < 0.95, 500 + (h[2] % np.uint64(150)).astype(np.int64),
                               661 + (h[2] % np.uint64(BARCODE_WIDTH - 661)).astype(np.int64)))
    # Trailing N run on 6 % of haplotypes, a single inner N on 2 %.
    v = (h[3] >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    n_run = np.where(v < 0.06, 1 + (h[3] % np.uint64(40)).astype(np.int64), 0)
    columns = np.arange(BARCODE_WIDTH)
    codes[(columns >= (length - n_run)[:, None])] = 4
    inner = v > 0.98
    codes[rows[inner], ((h[3] >> np.uint64(8)) % np.uint64(500)).astype(np.int64)[inner]] = 4

    letters = np.frombuffer(b"ACGTN", dtype=np.uint8)[codes]
    data = letters[columns < length[:, None]]
    offsets = np.concatenate([[0], np.cumsum(length)]).astype(np.int64)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


@dataclass
class _World:
    taxonomy: _Taxonomy
    species: _Species
    sites: _Sites
    project_codes: list[str]
    project_years: np.ndarray
    project_start: np.ndarray
    plate_offset: int


def _text_columns(chunk: pl.DataFrame, world: _World, seed: int) -> pl.DataFrame:
    """Build the 23 CSV columns of a chunk of records."""
    taxonomy, species, sites = world.taxonomy, world.species, world.sites
    otu = chunk["otu"].to_numpy()
    genus = species.genus[otu]
    family = taxonomy.genus_family[genus]
    order = taxonomy.family_order[family]
    depth = chunk["depth"].to_numpy()

    def names(table: list[str | None], index: np.ndarray, shown: np.ndarray) -> pl.Series:
        values = pl.Series(table, dtype=pl.String).gather(np.maximum(index, 0))
        return values.zip_with(pl.Series(shown & (index >= 0)), pl.Series([None], dtype=pl.String))

    site = chunk["site"].to_numpy()
    split = pl.Series(SPLITS, dtype=pl.String).gather(chunk["split"].to_numpy())
    project = chunk["project"].to_numpy()
    years = world.project_years[project]
    numbers = world.project_start[project] + chunk["project_rank"].to_numpy()
    plate, well = np.divmod(chunk["plate_well"].to_numpy() + world.plate_offset, 96)

    frame = pl.DataFrame({
        "code": pl.Series(world.project_codes).gather(project),
        "number": numbers,
        "year": years,
        "plate": plate,
        "well_row": pl.Series(list("ABCDEFGH")).gather(well // 12),
        "well_col": well % 12 + 1,
        "cbg": plate % 3 == 0,
    })
    ids = frame.select(
        processid=pl.col("code") + pl.col("number").cast(pl.String) + "-"
        + pl.col("year").cast(pl.String),
        sampleid=pl.when(pl.col("cbg"))
        .then(pl.lit("CBG-A") + pl.col("plate").cast(pl.String).str.zfill(5))
        .otherwise(pl.lit("BIOUG") + pl.col("plate").cast(pl.String).str.zfill(5))
        + "-" + pl.col("well_row") + pl.col("well_col").cast(pl.String).str.zfill(2),
    )

    columns = {
        "processid": ids["processid"],
        "sampleid": ids["sampleid"],
        "phylum": pl.Series(["Arthropoda"] * len(otu)),
        "class": names(taxonomy.class_names, taxonomy.order_class[order], depth >= 1),
        "order": names(taxonomy.order_names, order, depth >= 2),
        "family": names(taxonomy.family_names, family, depth >= 3),
        "subfamily": names(taxonomy.subfamily_names, taxonomy.genus_subfamily[genus],
                           chunk["show_subfamily"].to_numpy()),
        "genus": names(taxonomy.genus_names, genus, depth >= 4),
        "species": names(species.names, otu, depth >= 5),
        "dna_bin": names(species.bins, otu, ~chunk["no_bin"].to_numpy()),
        "dna_barcode": pl.Series(_barcodes(chunk, species, seed)).cast(pl.String),
        "country": pl.Series(sites.country).gather(site),
        "province_state": pl.Series(sites.province, dtype=pl.String).gather(site),
        "coord-lat": pl.Series(sites.lat).gather(site).fill_nan(None),
        "coord-lon": pl.Series(sites.lon).gather(site).fill_nan(None),
        "image_measurement_value": chunk["image_measurement_value"],
        "area_fraction": chunk["area_fraction"],
        "scale_factor": chunk["scale_factor"],
        "inferred_ranks": chunk["inferred_ranks"],
        "split": split,
        "index_bioscan_1M_insect": chunk["index_1m"].replace(-1, None),
    }
    out = pl.DataFrame(columns)
    out = out.with_columns(
        taxon=pl.coalesce("species", "genus", "subfamily", "family", "order", "class", "phylum"),
        chunk=chunk_series(out["processid"], out["split"]),
    )
    return out.select(METADATA_COLUMNS)


# --- images -----------------------------------------------------------------------------------


def _jpeg(rng: np.random.Generator, image_size: int) -> bytes:
    """A small coloured-noise JPEG, or a cropped_256-like one (shorter side 256 pixels, a dark
    specimen on a light background) for ``image_size`` 256."""
    if image_size != 256:
        pixels = rng.integers(0, 256, size=(image_size, image_size, 3), dtype=np.uint8)
    else:
        width = int(rng.integers(256, 420))
        y, x = np.mgrid[0:256, 0:width].astype(np.float32)
        cx, cy = width / 2 + rng.normal(0, 10), 128 + rng.normal(0, 10)
        rx, ry = rng.uniform(0.25, 0.45) * width, rng.uniform(0.2, 0.4) * 256
        inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1
        colour = rng.uniform(40, 140, size=3)
        pixels = np.full((256, width, 3), 196.0, dtype=np.float32)
        pixels[inside] = colour
        pixels += rng.normal(0, 6, size=pixels.shape)
        pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


ZIP_PARTS = {"pretrain": ("pretrain.01", "pretrain.02"), "train": ("train",)}
"""Zip of each partition in the official distribution; the five evaluation partitions and
other_heldout go into ``_eval``."""


def _zip_name(package: str, split: str, position: float) -> str:
    parts = ZIP_PARTS.get(split, ("eval",))
    return f"BIOSCAN_5M_{package}_{parts[min(int(position * len(parts)), len(parts) - 1)]}.zip"


def _write_images(root: Path, metadata: pl.DataFrame, chosen: np.ndarray, *, package: str,
                  layout: str, image_size: int, rng: np.random.Generator) -> None:
    rows = metadata[chosen.tolist()].select("processid", "split", "chunk")
    paths = [image_relative_path(package, split, chunk, pid)
             for pid, split, chunk in rows.iter_rows()]
    if layout == "folders":
        for relative in paths:
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_jpeg(rng, image_size))
        return
    archives: dict[str, list[tuple[str, bytes]]] = {}
    for index, (relative, split) in enumerate(zip(paths, rows["split"], strict=True)):
        name = _zip_name(package, split, index / len(paths))
        archives.setdefault(name, []).append((relative, _jpeg(rng, image_size)))
    for name, members in archives.items():
        with atomic_path(root / name) as tmp, zipfile.ZipFile(tmp, "w") as archive:
            for member, data in members:
                archive.writestr(member, data)


def _choose_images(rng: np.random.Generator, split_code: np.ndarray, images: int) -> np.ndarray:
    """Pick ``images`` records: one of each partition first, then at random."""
    first = [int(rng.choice(np.flatnonzero(split_code == code)))
             for code in range(len(SPLITS)) if (split_code == code).any()]
    first = first[:images]
    rest = np.setdiff1d(np.arange(len(split_code)), first)
    more = rng.choice(rest, size=images - len(first), replace=False)
    return np.sort(np.concatenate([first, more]).astype(np.int64))


# --- the generator ----------------------------------------------------------------------------


def write_bioscan5m_sample(
    root: str | PathLike[str],
    *,
    rows: int = 200,
    seed: int = 0,
    images: int | None = None,
    image_size: int = 32,
    package: str = "cropped_256",
    layout: str = "folders",
) -> Path:
    """Write a synthetic BIOSCAN-5M copy into ``root`` in the official layout.

    Args:
        root: Output folder; created when missing.
        rows: Records in the metadata CSV, from 8 to the release's 5,150,850 and beyond.
        seed: Seed of every random draw; the same seed and rows give the same files.
        images: Records that get a JPEG, one of each partition first; every record for
            ``None``, none for 0. The metadata does not depend on this choice.
        image_size: Side of the coloured-noise square images in pixels; 256 writes images
            like cropped_256 instead (shorter side 256, a dark specimen on a light background).
        package: Image package folder or zip name to write the images under.
        layout: ``"folders"`` (``bioscan5m/images/<package>/<split>/[<chunk>/]``) or ``"zip"``
            (``BIOSCAN_5M_<package>_train.zip``, ``_eval.zip``, ``_pretrain.01.zip`` and
            ``_pretrain.02.zip`` in ``root``, members under the same paths).

    Returns:
        ``root`` as an absolute path.

    Raises:
        UnknownNameError: ``layout`` or ``package`` is not known.
        ValueError: ``rows`` is below 8, or ``images`` is negative or above ``rows``.
    """
    if layout not in LAYOUTS:
        raise UnknownNameError("sample layout", layout, LAYOUTS)
    if package not in PACKAGES:
        raise UnknownNameError("BIOSCAN-5M image package", package, PACKAGES)
    split_counts(rows)
    if images is not None and not 0 <= images <= rows:
        raise ValueError(f"images is {images}; expected 0 to rows ({rows})")
    root = Path(root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)

    world_rng, record_rng, image_rng = (np.random.default_rng([seed, i]) for i in range(3))
    taxonomy = _build_taxonomy(world_rng)
    species = _build_species(world_rng, taxonomy, rows)
    sites = _build_sites(world_rng, rows)
    n_projects = _scaled(2_500, rows, minimum=3)
    world = _World(
        taxonomy=taxonomy,
        species=species,
        sites=sites,
        project_codes=_project_codes(world_rng, n_projects),
        project_years=world_rng.integers(19, 24, size=n_projects),
        project_start=world_rng.integers(1, 30_000, size=n_projects),
        plate_offset=int(world_rng.integers(10_000, 40_000)) * 96,
    )
    records = _records(record_rng, rows, species, taxonomy, sites)

    csv_path = root / CSV_RELATIVE_PATH
    image_columns: list[pl.DataFrame] = []
    with atomic_path(csv_path) as tmp, tmp.open("wb") as handle:
        handle.write((",".join(METADATA_COLUMNS) + "\n").encode())
        for start in range(0, rows, CHUNK_ROWS):
            text = _text_columns(records.slice(start, CHUNK_ROWS), world, seed)
            text.write_csv(handle, include_header=False)
            if images != 0:
                image_columns.append(text.select("processid", "split", "chunk"))
            logger.debug("wrote BIOSCAN-5M sample rows %d-%d", start, start + text.height)

    if images != 0:
        chosen = (np.arange(rows) if images is None
                  else _choose_images(image_rng, records["split"].to_numpy(), images))
        _write_images(root, pl.concat(image_columns), chosen, package=package, layout=layout,
                      image_size=image_size, rng=image_rng)

    write_text(root / SAMPLE_MARKER, "Synthetic BIOSCAN-5M sample written by fieldharness.\n")
    return root
