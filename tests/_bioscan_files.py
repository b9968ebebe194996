"""The official BIOSCAN-5M CSV column order and partitions, written out independently of the
``bioscan`` package so that tests can build metadata files without trusting its spec."""

from __future__ import annotations

COLUMNS_5M = (
    "processid", "sampleid", "taxon", "phylum", "class", "order", "family", "subfamily", "genus",
    "species", "dna_bin", "dna_barcode", "country", "province_state", "coord-lat", "coord-lon",
    "image_measurement_value", "area_fraction", "scale_factor", "inferred_ranks", "split",
    "index_bioscan_1M_insect", "chunk",
)  # fmt: skip
"""Column order of the official BIOSCAN_5M_Insect_Dataset_metadata.csv."""

SPLITS_5M = ("pretrain", "train", "val", "test", "key_unseen", "val_unseen", "test_unseen")
"""Partitions the generated test files draw from (``other_heldout`` is left out)."""
