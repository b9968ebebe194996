"""Run configuration: defaults, then a TOML file or preset, then ``--set KEY=VALUE`` overrides.

A training command starts from a nested dict of defaults and merges a TOML file over it. The file
is a path, or a preset name such as ``paper`` or ``sample`` that a dataset package maps to a TOML
file it ships. Finally the ``KEY=VALUE`` overrides from the command line apply. Nested keys are
dotted (``optim.lr=0.01``). Every value is checked against the type of the default it replaces,
so a typo in a key or a value fails before any training starts.

This module does not import torch: the command line imports it to build its parser.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import logging
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import (
    DataFormatError,
    FieldHarnessError,
    MissingDependencyError,
    UnknownNameError,
)

logger = logging.getLogger(__name__)

__all__ = [
    "add_training_arguments",
    "config_from_args",
    "load_config",
    "load_preset_config",
    "non_negative_int",
    "parse_device",
    "positive_int",
    "require_torch",
]

_TRUE_WORDS = frozenset({"true", "1", "yes"})
_FALSE_WORDS = frozenset({"false", "0", "no"})
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
_DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def load_config(
    defaults: Mapping[str, Any],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    presets: Mapping[str, Path] | None = None,
) -> dict[str, Any]:
    """Build a run configuration from defaults, a TOML file or preset, and overrides.

    Each value from the file or an override must fit the type of the default it replaces:

    * ``int``: an integer (a TOML float or a boolean is rejected);
    * ``float``: a number, integers included;
    * ``bool``: ``true``/``false``/``1``/``0``/``yes``/``no`` in any case for an override, a TOML
      boolean in a file;
    * ``str``: any text, taken as it is;
    * ``list``/``tuple``: ``30,60,80`` or a TOML array such as ``[30, 60, 80]``, each element of
      the type of the default's first element (elements of an empty default are parsed as TOML
      literals, else kept as text);
    * ``None``: any TOML literal (``0.5``, ``"a"``, ``[1, 2]``), else the text itself;
    * ``dict``: a TOML table, merged key by key. An empty dict default is an open table that
      accepts any key.

    Args:
        defaults: The default configuration, possibly nested. It is not modified.
        path: A TOML file, or a preset name looked up in ``presets``. ``None`` uses the defaults.
        overrides: ``KEY=VALUE`` strings applied in order after the file, with dotted keys for
            nested tables.
        presets: Preset names mapped to TOML files, e.g. ``{"paper": Path(".../paper.toml")}``.
            A name found here wins over a file of the same name in the working folder.

    Returns:
        A new nested dict with the merged configuration.

    Raises:
        UnknownNameError: A key that the defaults do not have, or ``path`` that is neither a file
            nor a preset name. The message lists the valid keys or presets.
        DataFormatError: A TOML syntax error (with file and line) or a value of the wrong type in
            the file.
        FieldHarnessError: A missing config file, an override without ``=``, or an override value
            that does not parse as the type of its default.
    """
    config = copy.deepcopy(dict(defaults))
    open_tables = _open_tables(defaults)

    if path is not None:
        file = _resolve_config_path(path, presets)
        table = _read_toml(file)
        _merge_table(config, table, defaults, prefix="", origin=file, open_tables=open_tables)

    for text in overrides:
        _apply_override(config, text, defaults, open_tables)
    return config


def parse_device(text: str) -> str:
    """Check a ``--device`` value: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        argparse.ArgumentTypeError: Any other value. argparse reports it as a usage error.
    """
    if _DEVICE_PATTERN.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(
            f"invalid device {text!r}; expected auto, cpu, cuda or cuda:N (N = GPU index)")
    return text


def _parse_workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"invalid worker count {text!r}; expected an integer >= 0")
    return value


def add_training_arguments(
    parser: argparse.ArgumentParser, *, presets: Sequence[str] = ()
) -> None:
    """Add the options that every training command shares to ``parser``.

    The options are ``--config``, ``--set`` (stored in ``overrides``), ``--device``,
    ``--workers``, ``--resume`` and ``--weights``. ``--device`` and ``--workers`` default to
    ``None``, meaning the value from the config; :func:`config_from_args` copies them into the
    config when given.

    Args:
        parser: The parser or sub-parser of the training command.
        presets: The preset names that ``--config`` accepts, listed in its help text.
    """
    preset_text = f" or a preset: {', '.join(presets)}" if presets else ""
    parser.add_argument(
        "--config", default=None, metavar="FILE_OR_PRESET",
        help=f"TOML file whose values replace the defaults{preset_text} (default: the "
             "published settings; a baseline may pick a short preset on generated sample data "
             "and says so)")
    parser.add_argument(
        "--set", action="append", dest="overrides", default=[], metavar="KEY=VALUE",
        help="set one config value after --config, with dotted keys for nested tables, e.g. "
             "--set lr=0.01, --set milestones=30,60,80 or --set binary.epochs=5 (repeatable; "
             "an unknown key lists the valid ones)")
    parser.add_argument(
        "--device", type=parse_device, default=None,
        help="device to train and predict on: auto (CUDA when available, else CPU), cpu, cuda "
             "or cuda:N (default: the config's device, which defaults to auto)")
    parser.add_argument(
        "--workers", type=_parse_workers, default=None, metavar="N",
        help="DataLoader worker processes per training process; 0 loads batches in the main "
             "process (default: the config's workers)")
    parser.add_argument(
        "--resume", nargs="?", const="last", default=None, metavar="CHECKPOINT",
        help="continue training from a checkpoint file, or without a value from the run "
             "folder's checkpoints/last.pt")
    parser.add_argument(
        "--weights", type=Path, default=None, metavar="PATH",
        help="initialise the model from a local checkpoint file before training or "
             "evaluation; nothing is downloaded")


def config_from_args(
    defaults: Mapping[str, Any],
    args: argparse.Namespace,
    presets: Mapping[str, Path] | None = None,
) -> dict[str, Any]:
    """Build the configuration from parsed :func:`add_training_arguments` options.

    Applies ``--config`` and ``--set`` with :func:`load_config`, then copies ``--device`` and
    ``--workers`` into the config keys ``device`` and ``workers`` when they were given.

    Raises:
        The errors of :func:`load_config`.
    """
    config = load_config(defaults, getattr(args, "config", None),
                         getattr(args, "overrides", None) or (), presets=presets)
    device = getattr(args, "device", None)
    if device is not None:
        config["device"] = device
    workers = getattr(args, "workers", None)
    if workers is not None:
        config["workers"] = workers
    return config


# --- file and preset ---------------------------------------------------------------------------


def _resolve_config_path(path: str | Path, presets: Mapping[str, Path] | None) -> Path:
    presets = presets or {}
    if isinstance(path, str) and path in presets:
        return Path(presets[path])

    file = Path(path)
    if file.is_file():
        return file
    if file.exists():
        raise FieldHarnessError(f"config path {str(file)!r} is not a file; expected a TOML file")

    looks_like_a_file = file.suffix != "" or len(file.parts) > 1
    if presets and not looks_like_a_file:
        raise UnknownNameError("config preset", str(path), presets)
    preset_text = f", or one of the presets {', '.join(sorted(presets))}" if presets else ""
    raise FieldHarnessError(
        f"config file {str(file)!r} not found; expected an existing TOML file{preset_text}")


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        with open(file, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        match = _TOML_POSITION.search(str(error))
        line = int(match.group(1)) if match else None
        raise DataFormatError(f"invalid TOML: {error}", path=file, line=line) from None
    except UnicodeDecodeError as error:
        raise DataFormatError(f"invalid TOML: the file is not UTF-8 text ({error.reason})",
                              path=file) from None


# --- merging -----------------------------------------------------------------------------------


def _leaf_keys(table: Mapping[str, Any], prefix: str) -> list[str]:
    """List the dotted keys of ``table``'s values, descending into nested non-empty tables."""
    keys = []
    for key, value in table.items():
        if isinstance(value, Mapping) and value:
            keys.extend(_leaf_keys(value, f"{prefix}{key}."))
        else:
            keys.append(f"{prefix}{key}")
    return keys


def _open_tables(defaults: Mapping[str, Any], prefix: str = "") -> set[str]:
    """Return the dotted paths of the empty dict defaults, which accept any key."""
    paths = set()
    for key, value in defaults.items():
        if isinstance(value, Mapping):
            if value:
                paths |= _open_tables(value, f"{prefix}{key}.")
            else:
                paths.add(f"{prefix}{key}")
    return paths


def _merge_table(
    config: dict[str, Any],
    table: Mapping[str, Any],
    template: Mapping[str, Any],
    *,
    prefix: str,
    origin: Path | None,
    open_tables: set[str],
) -> None:
    """Merge ``table`` (from a TOML file or an inline-table override) into ``config`` in place.

    Values are checked against ``template``, the defaults at the same level, so that an earlier
    override of a ``None`` default does not change the type that later values must have.
    """
    if prefix.rstrip(".") in open_tables:
        config.update(copy.deepcopy(dict(table)))
        return

    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if key not in config:
            raise UnknownNameError("config key", dotted, _leaf_keys(config, prefix))

        default = template[key]
        if isinstance(default, Mapping):
            if not isinstance(value, Mapping):
                _raise_bad_value(dotted, value, "a table of keys", origin)
            _merge_table(config[key], value, default, prefix=f"{dotted}.", origin=origin,
                         open_tables=open_tables)
        else:
            config[key] = _coerce_value(dotted, value, default, origin)


def _apply_override(
    config: dict[str, Any], text: str, defaults: Mapping[str, Any], open_tables: set[str]
) -> None:
    key, separator, raw = text.partition("=")
    key = key.strip()
    if not separator or not key:
        raise FieldHarnessError(
            f"invalid override {text!r}; expected the form KEY=VALUE, e.g. lr=0.01")

    parts = key.split(".")
    table = config
    template = defaults
    for depth, part in enumerate(parts[:-1]):
        dotted = ".".join(parts[: depth + 1])
        if dotted in open_tables:
            table = table[part]
            for inner in parts[depth + 1: -1]:
                table = table.setdefault(inner, {})
                if not isinstance(table, dict):
                    raise FieldHarnessError(
                        f"invalid config key {key!r}: {inner!r} is a value, not a table")
            table[parts[-1]] = _parse_text(key, raw.strip(), None)
            return
        if part not in table:
            raise UnknownNameError("config key", dotted, _leaf_keys(config, ""))
        if not isinstance(table[part], dict):
            raise FieldHarnessError(
                f"invalid config key {key!r}: {dotted!r} is a value, not a table; "
                f"expected one of: {', '.join(sorted(_leaf_keys(config, '')))}")
        table = table[part]
        template = template[part]

    name = parts[-1]
    if name not in table:
        raise UnknownNameError("config key", key, _leaf_keys(config, ""))
    default = template[name]
    if isinstance(default, Mapping):
        value = _parse_toml_literal(raw.strip())
        if not isinstance(value, Mapping):
            _raise_bad_value(key, raw.strip(), "an inline TOML table such as {a = 1, b = 2}",
                             None)
        _merge_table(table[name], value, default, prefix=f"{key}.", origin=None,
                     open_tables=open_tables)
        return
    table[name] = _parse_text(key, raw.strip(), default)


# --- values ------------------------------------------------------------------------------------

_MISSING = object()


def _parse_toml_literal(text: str) -> Any:
    """Return ``text`` parsed as one TOML value, or ``_MISSING`` when it is not one."""
    try:
        parsed = tomllib.loads(f"value = {text}")
    except tomllib.TOMLDecodeError:
        return _MISSING
    if set(parsed) != {"value"}:
        return _MISSING
    return parsed["value"]


def _describe(default: Any) -> str:
    if isinstance(default, bool):
        return "a boolean (true, false, 1, 0, yes or no)"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, list | tuple):
        element = f" of {_describe(default[0])}s" if default else ""
        element = element.replace(" of an ", " of ").replace(" of a ", " of ")
        return f"a list{element}, e.g. 30,60,80 or [30, 60, 80]"
    return f"a value of type {type(default).__name__}"


def _raise_bad_value(key: str, value: Any, expected: str, origin: Path | None) -> None:
    if origin is not None:
        raise DataFormatError("invalid config value", path=origin, field=key, value=value,
                              expected=expected)
    raise FieldHarnessError(f"invalid value {value!r} for config key {key!r}; expected {expected}")


def _coerce_value(key: str, value: Any, default: Any, origin: Path | None) -> Any:
    """Check a parsed value (TOML, or an element list) against the type of ``default``."""
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, list | tuple):
        if isinstance(value, list | tuple):
            if default:
                value = [_coerce_value(f"{key}[{i}]", item, default[0], origin)
                         for i, item in enumerate(value)]
            return type(default)(value)
    elif isinstance(value, type(default)):
        return value
    else:
        try:
            return type(default)(value)
        except (TypeError, ValueError):
            pass
    _raise_bad_value(key, value, _describe(default), origin)
    raise AssertionError("unreachable")


def _parse_text(key: str, text: str, default: Any) -> Any:
    """Parse override text to the type of ``default``."""
    if default is None:
        literal = _parse_toml_literal(text)
        return text if literal is _MISSING else literal

    if isinstance(default, bool):
        word = text.lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    elif isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            pass
    elif isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            pass
    elif isinstance(default, str):
        return text
    elif isinstance(default, list | tuple):
        return _parse_list_text(key, text, default)
    else:
        try:
            return type(default)(text)
        except (TypeError, ValueError):
            pass
    _raise_bad_value(key, text, _describe(default), None)
    raise AssertionError("unreachable")


def _parse_list_text(key: str, text: str, default: list | tuple) -> list | tuple:
    if text.startswith("["):
        literal = _parse_toml_literal(text)
        if not isinstance(literal, list):
            _raise_bad_value(key, text, _describe(default), None)
        return _coerce_value(key, literal, default, None)

    items = [item.strip() for item in text.split(",")] if text else []
    if default:
        values = [_parse_text(f"{key}[{i}]", item, default[0]) for i, item in enumerate(items)]
    else:
        values = [_parse_text(f"{key}[{i}]", item, None) for i, item in enumerate(items)]
    return type(default)(values)


def load_preset_config(
    package: str,
    presets: Mapping[str, str],
    chosen: str | Path | None,
    overrides: Sequence[str],
    *,
    data_kind: str,
    run_name: str,
) -> dict[str, Any]:
    """Load a baseline's config: its ``paper`` preset, then the chosen file or preset, then
    the ``--set`` overrides.

    On generated sample data (``data_kind == "sample"``) with nothing chosen, the ``sample``
    preset (a short schedule) is taken, with a warning, so that a sample run finishes quickly.

    Args:
        package: The package whose ``configs/`` folder contains the preset files.
        presets: Preset name -> file name in that folder; must contain ``paper``.
        chosen: ``--config``: a preset name, a TOML path, or ``None``.
        overrides: ``--set`` values.
        data_kind: ``data_kind`` of the prepared copy.
        run_name: The run named in the warning, e.g. ``"Sewer-ML ctgnn"``.

    Raises:
        FieldHarnessError, DataFormatError, UnknownNameError: As :func:`load_config` raises them.
    """
    from importlib import resources

    folder = resources.files(package) / "configs"
    paths = {name: Path(str(folder / file)) for name, file in presets.items()}
    if chosen is None and data_kind == "sample" and "sample" in paths:
        chosen = "sample"
        logger.warning("The prepared data is generated sample data, so %s uses the short "
                       "'sample' schedule; pass --config paper for the published one.", run_name)
    with open(paths["paper"], "rb") as handle:
        defaults = tomllib.load(handle)
    return load_config(defaults, chosen, overrides, presets=paths)


def recorded_config(config: Mapping[str, Any], runtime_keys: Sequence[str],
                    weights: str | Path | None = None) -> dict[str, Any]:
    """Return the settings that define a run's configuration, for its run record.

    Settings that only choose the hardware (``runtime_keys``, e.g. device and workers) are left
    out. A run from other initial weights is another configuration on the leaderboard, so
    ``weights`` is recorded as an absolute path.
    """
    recorded = {key: copy.deepcopy(value) for key, value in config.items()
                if key not in runtime_keys}
    if weights is not None:
        recorded["weights"] = str(Path(weights).resolve())
    return recorded


def require_torch(purpose: str, *modules: str) -> None:
    """Raise a clear error when PyTorch (or another module of the train extra) is missing.

    Args:
        purpose: What needs it, e.g. ``"training CT-GNN"``.
        modules: The modules to check; ``("torch",)`` when none are given.

    Raises:
        MissingDependencyError: A module is not installed; the message gives the install command.
    """
    for name in modules or ("torch",):
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise MissingDependencyError(
                f"{purpose} needs PyTorch ({error.name} is not installed); install it with: "
                "pip install 'fieldharness[train]'") from None


def _integer_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}; expected an integer >= "
                                         f"{minimum}")
    return value


def positive_int(text: str) -> int:
    """Parse a command-line integer >= 1 (an argparse ``type``)."""
    return _integer_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """Parse a command-line integer >= 0 (an argparse ``type``)."""
    return _integer_at_least(text, 0)
