"""Look up datasets, evaluators and baselines registered through entry points.

Third-party packages add their own by declaring entry points in the groups below; nothing in the
core needs editing. Tests and notebooks can also register in-process with the ``register_*``
functions.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points
from typing import Any

from harness.errors import UnknownNameError
from harness.plugin import Baseline, DatasetPlugin, Evaluator

DATASETS_GROUP = "fieldharness.datasets"
EVALUATORS_GROUP = "fieldharness.evaluators"
BASELINES_GROUP = "fieldharness.baselines"

_extra: dict[str, dict[str, Any]] = {DATASETS_GROUP: {}, EVALUATORS_GROUP: {}, BASELINES_GROUP: {}}


@functools.cache
def _entry_points(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def _names(group: str) -> list[str]:
    return sorted(set(_entry_points(group)) | set(_extra[group]))


def _load(group: str, name: str, kind: str) -> Any:
    if name in _extra[group]:
        return _extra[group][name]
    try:
        ep = _entry_points(group)[name]
    except KeyError:
        raise UnknownNameError(kind, name, _names(group)) from None
    return ep.load()


def dataset_names() -> list[str]:
    """Return the names of every registered dataset."""
    return _names(DATASETS_GROUP)


def get_dataset(name: str) -> DatasetPlugin:
    """Return a new instance of the plugin of dataset ``name``."""
    return _load(DATASETS_GROUP, name, "dataset")()


def evaluator_names() -> list[str]:
    """Return every name accepted by ``python -m harness eval``."""
    names = set(_names(EVALUATORS_GROUP))
    for name in dataset_names():
        if get_dataset(name).evaluator() is not None:
            names.add(name)
    return sorted(names)


def get_evaluator(name: str) -> Evaluator:
    """Return the evaluator of dataset ``name``, or the standalone evaluator of that name."""
    if name in dataset_names():
        evaluator = get_dataset(name).evaluator()
        if evaluator is not None:
            return evaluator
    if name in _names(EVALUATORS_GROUP):
        return _load(EVALUATORS_GROUP, name, "evaluator")()
    raise UnknownNameError("evaluator", name, evaluator_names())


def baseline_names(dataset: str | None = None) -> list[str]:
    """Return the registered ``DATASET.METHOD`` names, optionally of one dataset only."""
    names = _names(BASELINES_GROUP)
    if dataset is not None:
        names = [n for n in names if n.split(".", 1)[0] == dataset]
    return names


def get_baseline(dataset: str, method: str) -> Baseline:
    """Return a new instance of baseline ``method`` of ``dataset``."""
    key = f"{dataset}.{method}"
    if key not in _names(BASELINES_GROUP):
        valid = [n.split(".", 1)[1] for n in baseline_names(dataset)]
        raise UnknownNameError(f"method of {dataset}", method, valid)
    return _load(BASELINES_GROUP, key, "baseline")()


def register_dataset(name: str, plugin: type[DatasetPlugin]) -> None:
    """Register a dataset plugin in this process only (tests, notebooks)."""
    _extra[DATASETS_GROUP][name] = plugin


def register_evaluator(name: str, evaluator: type[Evaluator]) -> None:
    """Register a standalone evaluator in this process only."""
    _extra[EVALUATORS_GROUP][name] = evaluator


def register_baseline(dataset: str, method: str, baseline: type[Baseline]) -> None:
    """Register a baseline in this process only."""
    _extra[BASELINES_GROUP][f"{dataset}.{method}"] = baseline
