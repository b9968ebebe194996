"""Load BIOSCAN-5M metadata: prepared ``load_dataset`` against bioscan-dataset 1.3.0.

Usage::

    .venv/bin/python benchmarks/bench_bioscan_load.py [--rows 5150850] [--repeats 3]
        [--seed 0] [--root DIR] [--home DIR] [--keep] [--output FILE]

Steps, each in its own fresh interpreter (a subprocess), so that time and peak memory belong
to one path only:

1. ``generate``: ``bioscan.sample5m.write_bioscan5m_sample(root, rows=..., images=0)`` writes
   the synthetic metadata CSV (informational).
2. ``prepare``: ``python -m harness prepare bioscan-5m --source ROOT`` into the data home
   ``--home`` (a one-time cost, informational).
3. The load paths of :data:`PATHS`, each run ``--repeats`` times in interleaved order after
   one sequential read of the CSV and the prepared files, so every run reads from the page
   cache. A path's child process times its imports and its load separately and records its
   peak resident memory (``VmHWM`` of ``/proc/self/status`` and ``ru_maxrss``) right after the
   load, before it computes the fingerprint of the records it loaded.

The incumbent's ``BIOSCAN5M`` class rejects a CSV whose MD5 is not the release's, so its
metadata path is called directly, with the arguments ``BIOSCAN5M.__init__`` passes by
default (``BIOSCAN5M._load_metadata`` in bioscan-dataset 1.3.0)::

    load_bioscan5m_metadata(csv, max_nucleotides=660, reduce_repeated_barcodes=False,
                            split=split, usecols=USECOLS)

The class first checks the MD5 of the 4.2 GB CSV and, with the default image modality, the
image folder. Neither check is timed, so the incumbent is measured with less work than a user
of the class waits for.

After all runs the script checks that every path of a split returned the same records. It
compares the row count and SHA-256 digests of the processids and species in order. For the
parity path (``ours labels``) it also compares the digests of the eight ``<rank>_index``
columns and of the barcodes cut to 660 nucleotides with the incumbent's. A mismatch fails the
script.

A path's ``process`` time runs from the start of its interpreter to the loaded records, so it
contains interpreter start, imports and load, but not the fingerprint.

Prints a Markdown table and writes the result as JSON (default
``benchmarks/results/bioscan_load.json``). The generated source and data home are deleted at
the end unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Only standard-library modules are imported at the top, so that the parent process stays
# small (Linux carries its peak RSS over fork and exec into each child's ru_maxrss) and a
# child's import time covers all of its own third-party imports.

FULL_ROWS = 5_150_850
MAX_NUCLEOTIDES = 660
"""bioscan-dataset 1.3.0's default ``max_nucleotides``."""

LABEL_RANKS = ("phylum", "class", "order", "family", "subfamily", "genus", "species", "dna_bin")
"""Columns that bioscan-dataset 1.3.0 turns into ``<rank>_index`` columns on load."""

TARGET_SPEED_UP = 50.0
"""Warm ``load_dataset("bioscan-5m", split="train")`` should be at least this much faster."""

CSV_RELATIVE_PATH = "bioscan5m/metadata/csv/BIOSCAN_5M_Insect_Dataset_metadata.csv"
"""The same value as ``bioscan.spec.CSV_RELATIVE_PATH``, repeated to keep the parent small."""

PATHS: dict[str, dict[str, str]] = {
    "incumbent train": {"side": "incumbent", "split": "train", "kind": "pandas"},
    "ours hf train": {"side": "ours", "split": "train", "kind": "hf"},
    "ours polars train": {"side": "ours", "split": "train", "kind": "polars"},
    "ours labels train": {"side": "ours", "split": "train", "kind": "labels"},
    "incumbent pretrain": {"side": "incumbent", "split": "pretrain", "kind": "pandas"},
    "ours hf pretrain": {"side": "ours", "split": "pretrain", "kind": "hf"},
    "ours polars pretrain": {"side": "ours", "split": "pretrain", "kind": "polars"},
}
"""Measured load paths. ``hf`` is ``load_dataset(...)``, a memory-mapped ``datasets.Dataset``.
``polars`` is the same with ``format="polars"``, the whole split in memory. ``labels`` is the
polars frame plus the extra work of the incumbent's load: the eight dataset-wide
``<rank>_index`` columns (``bioscan.labels.Vocabulary.dataset_wide`` over every split) and the
barcodes cut to 660 nucleotides (``bioscan.dna.truncate``)."""

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "bioscan_load.json"


# --- child processes --------------------------------------------------------------------------

def _peak_memory() -> dict[str, float]:
    """Return this process's peak resident memory in MiB, as VmHWM and as ``ru_maxrss``."""
    peak_kib = 0
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                peak_kib = int(line.split()[1])
    maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"vmhwm_mib": peak_kib / 1024, "ru_maxrss_mib": maxrss_kib / 1024}


def _digest(values: Any) -> str:
    """Return the SHA-256 of string values in order, with ``None`` distinct from ``""``."""
    digest = hashlib.sha256()
    for value in values:
        digest.update(b"\x00\n" if value is None else value.encode() + b"\n")
    return digest.hexdigest()


def _digest_indices(values: Any) -> str:
    import numpy as np

    return hashlib.sha256(np.asarray(values, dtype=np.int64).tobytes()).hexdigest()


def _load_ours(kind: str, split: str) -> tuple[float, float, Any]:
    """Import, then load ``split`` as path ``kind`` does; return both times and the records."""
    started = time.perf_counter()
    if kind == "hf":
        import datasets  # noqa: F401  (the returned object's library, imported by the load)
    else:
        import polars as pl
    from harness import load_dataset

    if kind == "labels":
        from bioscan.dna import truncate
        from bioscan.labels import Vocabulary
    loaded = time.perf_counter()

    if kind == "hf":
        records = load_dataset("bioscan-5m", split=split)
        len(records)
        records[0]
    else:
        records = load_dataset("bioscan-5m", split=split, format="polars")
        if kind == "labels":
            # Vocabularies over every split, as bioscan-dataset builds its categories from the
            # whole CSV before it filters to the split.
            every_split = load_dataset("bioscan-5m", format="polars", columns=list(LABEL_RANKS))
            whole = pl.concat(list(every_split.values()))
            for rank in LABEL_RANKS:
                records = records.with_columns(
                    Vocabulary.dataset_wide(whole, rank).encode(records))
            records = records.with_columns(
                truncate(records["dna_barcode"], MAX_NUCLEOTIDES).alias("dna_barcode"))
        len(records)
        records.row(0)
    return loaded - started, time.perf_counter() - loaded, records


def _fingerprint_ours(kind: str, records: Any) -> dict[str, Any]:
    if kind == "hf":
        import polars as pl

        records = pl.from_arrow(records.data.table.select(["processid", "species"]))
    result = {
        "rows": records.height,
        "processid_sha256": _digest(records["processid"].to_list()),
        "species_sha256": _digest(records["species"].to_list()),
        "head": [list(row) for row in records.select("processid", "species").head(3).rows()],
    }
    if kind == "labels":
        result["index_sha256"] = {
            rank: _digest_indices(records[f"{rank}_index"].to_numpy()) for rank in LABEL_RANKS}
        result["barcode_sha256"] = _digest(records["dna_barcode"].to_list())
    return result


def _load_incumbent(split: str, csv_path: str) -> tuple[float, float, Any]:
    started = time.perf_counter()
    import pandas  # noqa: F401  (imported by bioscan_dataset; listed for the import time)
    from bioscan_dataset.bioscan5m import USECOLS, load_bioscan5m_metadata
    loaded = time.perf_counter()

    # The arguments BIOSCAN5M._load_metadata passes with the class's defaults (1.3.0).
    frame = load_bioscan5m_metadata(csv_path, max_nucleotides=MAX_NUCLEOTIDES,
                                    reduce_repeated_barcodes=False, split=split, usecols=USECOLS)
    len(frame)
    frame.iloc[0]
    return loaded - started, time.perf_counter() - loaded, frame


def _fingerprint_incumbent(frame: Any, split: str) -> dict[str, Any]:
    def strings(column: str) -> Any:
        # Only one slice of Python strings is alive at a time, because the barcodes of the full
        # pretrain partition take over 3 GB as Python strings.
        for start in range(0, len(frame), 100_000):
            series = frame[column].iloc[start:start + 100_000].astype(object)
            yield from series.where(series.notna(), None).tolist()

    head = frame[["processid", "species"]].head(3).astype(object)
    result = {
        "rows": len(frame),
        "processid_sha256": _digest(strings("processid")),
        "species_sha256": _digest(strings("species")),
        "head": [[value if isinstance(value, str) else None for value in row]
                 for row in head.itertuples(index=False)],
        "index_sha256": {rank: _digest_indices(frame[f"{rank}_index"].to_numpy())
                         for rank in LABEL_RANKS},
    }
    if split == "train":
        # Only the parity path of train compares barcodes, so pretrain skips the 3 GB digest.
        result["barcode_sha256"] = _digest(strings("dna_barcode"))
    return result


def run_child(path: str, csv_path: str) -> None:
    """Run one measured load path and print its result as one JSON line."""
    settings = PATHS[path]
    if settings["side"] == "incumbent":
        import_s, load_s, records = _load_incumbent(settings["split"], csv_path)
        loaded_at = time.time()
        memory = _peak_memory()
        fingerprint = _fingerprint_incumbent(records, settings["split"])
    else:
        import_s, load_s, records = _load_ours(settings["kind"], settings["split"])
        loaded_at = time.time()
        memory = _peak_memory()
        fingerprint = _fingerprint_ours(settings["kind"], records)
    print(json.dumps({"import_s": import_s, "load_s": load_s, "loaded_at": loaded_at, **memory,
                      "fingerprint": fingerprint}))


def generate_child(root: str, rows: int, seed: int) -> None:
    from bioscan.sample5m import write_bioscan5m_sample

    write_bioscan5m_sample(root, rows=rows, seed=seed, images=0)


# --- parent -----------------------------------------------------------------------------------

def _run(command: list[str], env: dict[str, str]) -> tuple[float, float, str, float]:
    """Run ``command`` and wait for it.

    Returns:
        Its wall time in seconds, its peak RSS in MiB (``ru_maxrss`` from ``wait4``), its
        stdout, and the ``time.time()`` at which it was started.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started_at = time.time()
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit status "
                           f"{process.returncode}:\n{stderr[-4000:]}")
    return elapsed, usage.ru_maxrss / 1024, stdout, started_at


def _read_through(folders: list[Path]) -> None:
    """Read every file under ``folders`` once, so that the timed runs find it in the page cache."""
    for folder in folders:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            with open(file, "rb") as handle:
                while handle.read(1 << 24):
                    pass


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text()
                      .splitlines() if line.startswith("MemTotal:"))
    versions_code = ("import json, bioscan_dataset, datasets, numpy, pandas, polars, pyarrow, "
                     "torch; print(json.dumps({m.__name__: m.__version__ for m in (bioscan_dataset,"
                     " datasets, numpy, pandas, polars, pyarrow, torch)}))")
    versions = json.loads(subprocess.run([sys.executable, "-c", versions_code], check=True,
                                         capture_output=True, text=True).stdout)
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(memory_kib / 2**20, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "versions": versions, "load_average_at_start": os.getloadavg()}


def _check_same_records(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Compare the fingerprints of every path with the incumbent's for the same split.

    Returns:
        One line per path that names what was compared.

    Raises:
        AssertionError: a run of a path loaded other records than the incumbent.
    """
    checks = []
    for split in ("train", "pretrain"):
        reference_name = f"incumbent {split}"
        reference = runs[reference_name][0]["fingerprint"]
        for name, settings in PATHS.items():
            if settings["split"] != split:
                continue
            keys = ["rows", "processid_sha256", "species_sha256", "head"]
            if settings["kind"] in ("labels", "pandas"):
                keys += [key for key in ("index_sha256", "barcode_sha256") if key in reference]
            for repeat, run in enumerate(runs[name]):
                for key in keys:
                    if run["fingerprint"][key] != reference[key]:
                        raise AssertionError(
                            f"{name} (run {repeat + 1}) differs from {reference_name} in {key}: "
                            f"{run['fingerprint'][key]!r} against {reference[key]!r}")
            checks.append(f"{name}: {', '.join(keys)} equal to {reference_name} "
                          f"({reference['rows']:,} rows)")
    return checks


def _summarise(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("process_s", "import_s", "load_s", "vmhwm_mib", "ru_maxrss_mib")
    summary = {f"{key}_median": statistics.median(run[key] for run in runs) for key in keys}
    summary["load_s_min"] = min(run["load_s"] for run in runs)
    summary["load_s_max"] = max(run["load_s"] for run in runs)
    return summary


def run(rows: int, repeats: int, seed: int, root: Path, home: Path) -> dict[str, Any]:
    env = dict(os.environ, FIELDHARNESS_HOME=str(home))
    env.pop("HF_DATASETS_OFFLINE", None)
    this_file = str(Path(__file__).resolve())
    machine = _machine()

    generate = _run([sys.executable, this_file, "--generate-child", str(root), "--rows",
                     str(rows), "--seed", str(seed)], env)
    print(f"generated {rows:,} rows in {generate[0]:.1f} s (peak {generate[1]:.0f} MiB)",
          file=sys.stderr)
    prepare = _run([sys.executable, "-m", "harness", "prepare", "bioscan-5m", "--source",
                    str(root)], env)
    print(f"prepared in {prepare[0]:.1f} s (peak {prepare[1]:.0f} MiB)", file=sys.stderr)
    csv_path = root / CSV_RELATIVE_PATH
    sizes = {"csv_bytes": csv_path.stat().st_size,
             "prepared_bytes": sum(p.stat().st_size for p in home.rglob("*") if p.is_file())}
    _read_through([csv_path.parent, home])

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in PATHS}
    for repeat in range(repeats):
        order = list(PATHS) if repeat % 2 == 0 else list(reversed(PATHS))
        for name in order:
            child_s, _, stdout, started_at = _run(
                [sys.executable, this_file, "--child", name, "--csv", str(csv_path)], env)
            result = json.loads(stdout.strip().splitlines()[-1])
            # From the start of the interpreter to the loaded records, without the fingerprint.
            result["process_s"] = result["loaded_at"] - started_at
            result["child_s"] = child_s
            runs[name].append(result)
            print(f"run {repeat + 1}/{repeats} {name}: load {result['load_s']:.3f} s, "
                  f"process {result['process_s']:.2f} s, peak {result['vmhwm_mib']:.0f} MiB",
                  file=sys.stderr)

    checks = _check_same_records(runs)
    summary = {name: _summarise(path_runs) for name, path_runs in runs.items()}
    ratios = {}
    for name, settings in PATHS.items():
        if settings["side"] != "ours":
            continue
        theirs = summary[f"incumbent {settings['split']}"]
        ours = summary[name]
        ratios[name] = {
            "load": theirs["load_s_median"] / ours["load_s_median"],
            "process": theirs["process_s_median"] / ours["process_s_median"],
            "memory": theirs["vmhwm_mib_median"] / ours["vmhwm_mib_median"],
        }
    return {
        "benchmark": "bioscan_load",
        "rows": rows,
        "seed": seed,
        "repeats": repeats,
        "sizes": sizes,
        "generate": {"wall_s": generate[0], "ru_maxrss_mib": generate[1]},
        "prepare": {"wall_s": prepare[0], "ru_maxrss_mib": prepare[1]},
        "paths": {name: {**PATHS[name], **summary[name]} for name in PATHS},
        "incumbent_over_ours": ratios,
        "target_speed_up": TARGET_SPEED_UP,
        "same_records": checks,
        "runs": {name: [{key: value for key, value in run.items() if key != "fingerprint"}
                        for run in path_runs] for name, path_runs in runs.items()},
        "fingerprints": {name: path_runs[0]["fingerprint"] for name, path_runs in runs.items()},
        "machine": machine,
        "load_average_at_end": os.getloadavg(),
    }


def print_table(result: dict[str, Any]) -> None:
    machine = result["machine"]
    print(f"BIOSCAN-5M metadata load, {result['rows']:,} rows, median of {result['repeats']} "
          f"runs, {machine['nproc']} x {machine['cpu']}, {machine['memory_gib']} GiB")
    print(f"generate: {result['generate']['wall_s']:.1f} s, "
          f"{result['generate']['ru_maxrss_mib']:.0f} MiB; prepare: "
          f"{result['prepare']['wall_s']:.1f} s, {result['prepare']['ru_maxrss_mib']:.0f} MiB")
    print()
    print("| path | import (s) | load (s) | load min-max (s) | process (s) | peak RSS (MiB) | "
          "load speed-up | process speed-up | memory ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, row in result["paths"].items():
        ratio = result["incumbent_over_ours"].get(name)
        ratio_cells = (f"{ratio['load']:.1f}x | {ratio['process']:.1f}x | {ratio['memory']:.1f}x"
                       if ratio else "- | - | -")
        print(f"| {name} | {row['import_s_median']:.2f} | {row['load_s_median']:.3f} | "
              f"{row['load_s_min']:.3f}-{row['load_s_max']:.3f} | {row['process_s_median']:.2f} "
              f"| {row['vmhwm_mib_median']:.0f} | {ratio_cells} |")
    print()
    train = result["incumbent_over_ours"]["ours hf train"]
    verdict = "meets" if train["load"] >= TARGET_SPEED_UP else "misses"
    memory = "less" if train["memory"] > 1 else "not less"
    print(f"load_dataset('bioscan-5m', split='train'): {train['load']:.1f}x the incumbent's load "
          f"speed ({verdict} the {TARGET_SPEED_UP:.0f}x target), {memory} peak memory")
    for check in result["same_records"]:
        print(f"same records: {check}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=FULL_ROWS,
                        help=f"records in the generated metadata CSV (default {FULL_ROWS:,}, "
                             "the full release)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per load path (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--root", type=Path, default=None,
                        help="empty folder for the generated CSV (default: a temporary folder, "
                             "the full size needs about 4.2 GB)")
    parser.add_argument("--home", type=Path, default=None,
                        help="empty data home to prepare into (default: a temporary folder, "
                             "the full size needs about 6.3 GB)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the generated CSV and the data home")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"JSON result file (default {DEFAULT_OUTPUT})")
    parser.add_argument("--child", choices=tuple(PATHS), help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--generate-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        run_child(args.child, args.csv)
        return 0
    if args.generate_child is not None:
        generate_child(args.generate_child, args.rows, args.seed)
        return 0
    if args.rows < 8 or args.repeats < 1:
        parser.error("--rows must be at least 8 and --repeats at least 1")
    for folder in (args.root, args.home):
        if folder is not None and folder.exists() and any(folder.iterdir()):
            parser.error(f"{folder} is not empty; pass an empty or new folder")

    scratch = Path(tempfile.mkdtemp(prefix="bench-bioscan-"))
    root = args.root if args.root is not None else scratch / "source"
    home = args.home if args.home is not None else scratch / "home"
    try:
        result = run(args.rows, args.repeats, args.seed, root, home)
    finally:
        if not args.keep:
            for folder in (root, home, scratch):
                shutil.rmtree(folder, ignore_errors=True)
    print_table(result)

    from harness.atomic import write_json

    write_json(args.output, result)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
