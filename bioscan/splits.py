"""The eight BIOSCAN-5M partitions and the split expressions of ``bioscan-dataset``.

A split expression is a partition name, an alias or a union of names joined with ``+``, as
``bioscan-dataset`` 1.3.0 accepts them (``bioscan_dataset/bioscan5m.py``: ``VALID_SPLITS``,
``SPLIT_ALIASES``, ``SEEN_SPLITS``, ``UNSEEN_SPLITS``, ``explode_metasplit``):

* ``seen`` is ``train + val + test``, the partitions of species with scientific names;
* ``unseen`` is ``key_unseen + val_unseen + test_unseen``;
* ``all`` is all eight partitions, ``pretrain`` and ``other_heldout`` included;
* ``validation`` is an alias of ``val``.

``other_heldout`` belongs to neither ``seen`` nor ``unseen``.
"""

from __future__ import annotations

from harness.errors import UnknownNameError

__all__ = ["ALIASES", "METASPLITS", "SEEN_SPLITS", "SPLITS", "UNSEEN_SPLITS", "resolve_split"]

SPLITS: tuple[str, ...] = (
    "pretrain", "train", "val", "test", "key_unseen", "val_unseen", "test_unseen",
    "other_heldout",
)
"""The values of the metadata CSV's ``split`` column, in the order of the BIOSCAN-5M paper."""

SEEN_SPLITS: tuple[str, ...] = ("train", "val", "test")
UNSEEN_SPLITS: tuple[str, ...] = ("key_unseen", "val_unseen", "test_unseen")

METASPLITS: dict[str, tuple[str, ...]] = {
    "all": SPLITS,
    "seen": SEEN_SPLITS,
    "unseen": UNSEEN_SPLITS,
}
"""Names that stand for several partitions."""

ALIASES: dict[str, str] = {"validation": "val"}


def resolve_split(text: str) -> list[str]:
    """Return the partitions that a split expression names, in the order of ``SPLITS``.

    Args:
        text: A partition name, ``all``, ``seen``, ``unseen``, ``validation``, or several of them
            joined with ``+`` (``"train+val"``, ``"seen+pretrain"``). Spaces around a name are
            ignored; a partition named twice is returned once.

    Returns:
        The partition names, each once.

    Raises:
        UnknownNameError: A part is not one of the names above; the message lists the valid ones.
    """
    valid = (*METASPLITS, *SPLITS, *ALIASES)
    chosen: set[str] = set()
    for part in str(text).split("+"):
        name = ALIASES.get(part.strip(), part.strip())
        if name in METASPLITS:
            chosen.update(METASPLITS[name])
        elif name in SPLITS:
            chosen.add(name)
        else:
            raise UnknownNameError("split of bioscan-5m", part.strip(), valid)
    return [name for name in SPLITS if name in chosen]
