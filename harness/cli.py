"""The command line: ``python -m harness COMMAND``.

Every subcommand takes the same flag names for the same things (``--data-dir``, ``--version``,
``--output``, ``--seed``). Errors that fieldharness raises on purpose print one line and exit
with status 2, while a bug prints its traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

from harness import __version__, registry
from harness.errors import FieldHarnessError
from harness.plugin import RunContext

logger = logging.getLogger("harness")

SUMMARY_METRICS = ("HOTA", "DetA", "AssA", "MOTA", "IDF1")


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, default=None, metavar="DIR",
        help="data home holding prepared datasets and runs (default: $FIELDHARNESS_HOME, else "
             "the user cache folder)")


def _add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", default=None, dest="dataset_version", metavar="VERSION",
                        help="dataset version (default: the dataset's default version)")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output", type=Path, default=None, metavar="DIR",
        help="folder for the run record and result files (default: a new folder under "
             "DATA_HOME/runs/)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed, recorded with the run; a training baseline seeds its "
                             "initial weights and data order with it (default: 0)")
    _add_data_dir(parser)


PREPARE_FLAG_PREFIX = "prepare_flag_"


def _add_prepare_flags(parser: argparse.ArgumentParser) -> None:
    """Accept each dataset's prepare option also as ``--NAME VALUE`` (``--gauges DIR``).

    ``prepare`` checks the option against the chosen dataset, so a flag of another dataset is an
    error that lists the valid options.
    """
    helps: dict[str, list[str]] = {}
    for name in registry.dataset_names():
        for option, text in registry.get_dataset(name).prepare_options.items():
            helps.setdefault(option, []).append(f"{name}: {text}")
    for option in sorted(helps):
        parser.add_argument("--" + option.replace("_", "-"), dest=PREPARE_FLAG_PREFIX + option,
                            default=None, metavar="VALUE",
                            help="same as --option " + option + "=VALUE (" +
                                 "; ".join(helps[option]) + ")")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with one sub-parser per command and per evaluator/baseline."""
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="fieldharness: versioned dataset loaders, official metrics and paper "
                    "baselines.")
    parser.add_argument("--version", action="version", version=f"fieldharness {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (-v: progress details, -vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log errors only")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser("list", help="list datasets, evaluators and baselines")
    _add_data_dir(p)
    p.set_defaults(handler=cmd_list)

    p = commands.add_parser("info", help="show a dataset's versions, files, splits, schema, "
                            "licence and BibTeX")
    p.add_argument("name", help="dataset name, e.g. mot17")
    p.add_argument("--bibtex", action="store_true", help="print only the BibTeX entry")
    _add_data_dir(p)
    p.set_defaults(handler=cmd_info)

    p = commands.add_parser("download", help="download a dataset's public files and check "
                            "their checksums")
    p.add_argument("name", help="dataset name, e.g. mot17 ('python -m harness list' lists them)")
    p.add_argument("--file", action="append", dest="files", metavar="NAME",
                   help="download only this file of the version (repeatable)")
    _add_version(p)
    _add_data_dir(p)
    p.set_defaults(handler=cmd_download)

    p = commands.add_parser("prepare", help="read an official download in place and write the "
                            "versioned Parquet copy")
    p.add_argument("name", help="dataset name, e.g. mot17 ('python -m harness list' lists them)")
    p.add_argument("--source", type=Path, required=True, metavar="DIR",
                   help="folder at or above the dataset's split folders")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   dest="prepare_options",
                   help="dataset-specific prepare option, repeatable; 'python -m harness info "
                        "NAME' lists them (e.g. image_package=cropped for bioscan-5m)")
    _add_prepare_flags(p)
    _add_version(p)
    _add_data_dir(p)
    p.set_defaults(handler=cmd_prepare)

    p = commands.add_parser("verify", help="re-check a prepared copy against its manifest and "
                            "its source files")
    p.add_argument("name", help="dataset name, e.g. mot17 ('python -m harness list' lists them)")
    p.add_argument("--no-sources", action="store_true",
                   help="check only the prepared tables, not the source files")
    _add_version(p)
    _add_data_dir(p)
    p.set_defaults(handler=cmd_verify)

    p = commands.add_parser("sample", help="write a small synthetic copy of a dataset in its "
                            "official layout")
    p.add_argument("name", help="dataset name, e.g. zef3d ('python -m harness list' lists them)")
    p.add_argument("--output", type=Path, required=True, metavar="DIR",
                   help="folder to write the sample into")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(handler=cmd_sample)

    p = commands.add_parser("eval", help="score predictions with a dataset's official metric")
    evaluators = p.add_subparsers(dest="evaluator", metavar="NAME", required=True)
    for name in registry.evaluator_names():
        evaluator = registry.get_evaluator(name)
        sub = evaluators.add_parser(name, help=evaluator.description,
                                    description=evaluator.description)
        evaluator.add_arguments(sub)
        _add_run_options(sub)
        sub.set_defaults(handler=cmd_eval)

    p = commands.add_parser("run", help="run a paper's baseline and record its scores")
    by_dataset: dict[str, list[str]] = {}
    for key in registry.baseline_names():
        dataset, method = key.split(".", 1)
        by_dataset.setdefault(dataset, []).append(method)
    if not by_dataset:
        # Nothing to choose from: accept any words and explain, instead of argparse's
        # "invalid choice ... (choose from )".
        p.add_argument("words", nargs="*", help=argparse.SUPPRESS)
        p.set_defaults(handler=cmd_run_none)
    else:
        datasets = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    for dataset in sorted(by_dataset):
        dp = datasets.add_parser(dataset, help=f"baselines of {dataset}")
        methods = dp.add_subparsers(dest="method", metavar="METHOD", required=True)
        for method in by_dataset[dataset]:
            baseline = registry.get_baseline(dataset, method)
            sub = methods.add_parser(method, help=baseline.description,
                                     description=baseline.description)
            baseline.add_arguments(sub)
            _add_run_options(sub)
            sub.set_defaults(handler=cmd_run)

    p = commands.add_parser("leaderboard", help="write the leaderboard CSV, Markdown table and "
                            "plot from the recorded runs")
    p.add_argument("--runs", type=Path, default=None, metavar="DIR",
                   help="folder searched for run records (default: DATA_HOME/runs)")
    p.add_argument("--output", type=Path, default=None, metavar="FILE",
                   help="CSV path; .md and .png files are written beside it (default: "
                        "leaderboard.csv in the runs folder)")
    p.add_argument("--include-sample", action="store_true",
                   help="also list runs on generated sample data")
    _add_data_dir(p)
    p.set_defaults(handler=cmd_leaderboard)

    p = commands.add_parser("publish", help="write a Hub-ready copy of a prepared dataset and "
                            "upload it to the Hugging Face Hub")
    p.add_argument("name", help="dataset name, e.g. mot17 ('python -m harness list' lists them)")
    p.add_argument("--repo", default=None, metavar="ORG/NAME",
                   help="Hub dataset repository (required unless --folder-only is given)")
    p.add_argument("--public", action="store_true",
                   help="create the repository as public (default: private)")
    p.add_argument("--allow-restricted-license", action="store_true",
                   help="publish even though the dataset's licence restricts redistribution")
    p.add_argument("--folder-only", type=Path, default=None, metavar="DIR",
                   help="only write the Hub-ready folder to DIR, upload nothing")
    p.add_argument("--token", default=None, help="Hub token (default: the logged-in token)")
    _add_version(p)
    _add_data_dir(p)
    p.set_defaults(handler=cmd_publish)
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    from harness.storage import prepared_versions

    print("Datasets (name, prepared versions, title):")
    for name in registry.dataset_names():
        spec = registry.get_dataset(name).spec
        versions = ", ".join(prepared_versions(name, data_dir=args.data_dir)) or "-"
        print(f"  {name:<14} {versions:<12} {spec.title}")
    print("Evaluators (python -m harness eval NAME):")
    for name in registry.evaluator_names():
        print(f"  {name:<14} {registry.get_evaluator(name).description}")
    print("Baselines (python -m harness run DATASET METHOD):")
    names = registry.baseline_names()
    width = max((len(key) + 1 for key in names), default=0)
    for key in names:
        dataset, method = key.split(".", 1)
        label = f"{dataset} {method}"
        print(f"  {label:<{width}} {registry.get_baseline(dataset, method).description}")
    if not names:
        print("  (none registered)")
    return 0


def _print_prepared(name: str, data_dir: Path | None) -> None:
    """Print each prepared copy: when, from where, what kind of data, and prepare's notes."""
    from harness.storage import prepared_versions, read_manifest

    versions = prepared_versions(name, data_dir=data_dir)
    if not versions:
        print(f"Prepared: none (python -m harness prepare {name} --source DIR)")
        return
    print("Prepared:")
    for version in versions:
        manifest = read_manifest(name, version=version, data_dir=data_dir)
        kind = "" if manifest.data_kind == "real" else f", {manifest.data_kind} data"
        subset = ", subset" if manifest.subset else ""
        print(f"  {version}: {manifest.created} from {manifest.source_root}{kind}{subset}")
        for note in manifest.notes:
            print(textwrap.fill(note, 100, initial_indent="    note: ",
                                subsequent_indent="      "))


def cmd_info(args: argparse.Namespace) -> int:
    plugin = registry.get_dataset(args.name)
    spec = plugin.spec
    if args.bibtex:
        print(spec.citation.strip())
        return 0
    print(f"{spec.name}: {spec.title}")
    print(textwrap.fill(spec.description, 100))
    print(f"Homepage: {spec.homepage}")
    redistribution = "allowed" if spec.redistributable else "not allowed without permission"
    print(f"Licence:  {spec.license} (redistribution {redistribution})")

    print("Versions:")
    for version in spec.versions:
        default = " (default)" if version.name == spec.version().name else ""
        print(f"  {version.name}{default}: {version.description}")
        for remote in version.files:
            checksum = (f"md5 {remote.md5}" if remote.md5 else
                        f"sha256 {remote.sha256}" if remote.sha256 else
                        "no published checksum")
            size = f", {remote.size:,} bytes" if remote.size else ""
            print(f"    file {remote.name} ({checksum}{size})")
            for url in remote.urls:
                print(f"      {url}")
        for key, rows in sorted(version.row_counts.items()):
            print(f"    rows {key}: {rows:,}")

    _print_prepared(spec.name, args.data_dir)
    if plugin.prepare_options:
        print("Prepare options (prepare --option NAME=VALUE, or --NAME VALUE with - for _):")
        for option, text in plugin.prepare_options.items():
            print(textwrap.fill(text, 100, initial_indent=f"  {option}: ",
                                subsequent_indent="    "))

    print("Splits:")
    for split in spec.splits:
        labels = "" if split.has_labels else " (no labels)"
        print(f"  {split.name}{labels}: {split.description}")

    print("Configs (load_dataset(NAME, config=...)):")
    for config in spec.configs:
        default = " (default)" if config.default else ""
        print(f"  {config.name}{default}: {config.description}")
        for column in config.schema:
            decoded = (" (image file path; load_dataset decodes it as an image)"
                       if column.name in config.image_columns else "")
            print(f"    {column.name}: {column.type}{decoded}")

    print("Citation (BibTeX):")
    print(textwrap.indent(spec.citation.strip(), "  "))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from harness.download import download_dataset

    paths = download_dataset(args.name, version=args.dataset_version, data_dir=args.data_dir,
                             files=args.files)
    for path in paths:
        print(path)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from harness.prepare import prepare_dataset

    options: dict[str, str] = {}
    for option in args.prepare_options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise FieldHarnessError(f"--option {option!r} is not NAME=VALUE; for example "
                                    "--option image_package=cropped")
        options[key.strip()] = value.strip()
    for dest, value in vars(args).items():
        if dest.startswith(PREPARE_FLAG_PREFIX) and value is not None:
            option = dest[len(PREPARE_FLAG_PREFIX):]
            if option in options and options[option] != value:
                raise FieldHarnessError(
                    f"--{option.replace('_', '-')} {value!r} and --option {option}="
                    f"{options[option]!r} disagree; give the option once")
            options[option] = value
    manifest = prepare_dataset(args.name, args.source, version=args.dataset_version,
                               data_dir=args.data_dir, options=options)
    kind = "subset of " if manifest.subset else ""
    print(f"Prepared {manifest.dataset} {manifest.version} ({kind}{manifest.data_kind} data) "
          f"from {manifest.source_root}")
    for key, table in sorted(manifest.tables.items()):
        print(f"  {key}: {table['rows']:,} rows")
    for note in manifest.notes:
        print(f"  note: {note}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from harness.prepare import verify_dataset

    report = verify_dataset(args.name, version=args.dataset_version, data_dir=args.data_dir,
                            check_sources=not args.no_sources)
    if report.ok:
        print(f"OK: {args.name} {report.manifest.version} matches its manifest")
        return 0
    print(f"{args.name} {report.manifest.version} differs from its manifest:", file=sys.stderr)
    for problem in report.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1


def cmd_sample(args: argparse.Namespace) -> int:
    root = registry.get_dataset(args.name).generate_sample(args.output, seed=args.seed)
    print(root)
    return 0


def _summary_columns(outcome) -> list[str]:
    """Return the headline metrics to print: MOT's, else the dataset's leaderboard metrics."""
    columns = [m for m in SUMMARY_METRICS if m in outcome.metrics]
    if not columns and outcome.dataset in registry.dataset_names():
        preferred = registry.get_dataset(outcome.dataset).leaderboard_metrics
        columns = [m for m in preferred if m in outcome.metrics]
    return columns or list(outcome.metrics)[:6]


def _print_outcome(outcome, record_path: Path) -> None:
    if not outcome.metrics:
        print("No scores: the split has no labels here. Written:")
        for path in outcome.files:
            print(f"  {path}")
        print(f"Run record: {record_path}")
        return
    columns = _summary_columns(outcome)
    # Rows per item (sequence, class) are printed when they carry the same metrics.
    rows = [(name, values) for name, values in outcome.per_item.items()
            if any(c in values for c in columns)]
    rows.append(("COMBINED", outcome.metrics))
    width = max(len(name) for name, _ in rows)
    widths = [max(8, len(c)) for c in columns]
    print(f"{'':<{width}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(columns, widths,
                                                                     strict=True)))
    for name, values in rows:
        cells = [f"{values[c]:>{w}.3f}" if isinstance(values.get(c), int | float) else " " * w
                 for c, w in zip(columns, widths, strict=True)]
        print(f"{name:<{width}}  " + "  ".join(cells))
    print(f"Run record: {record_path}")


def _execute(args: argparse.Namespace, kind: str, method_name: str, dataset: str, func) -> int:
    from harness.records import RunRecord, new_run_dir

    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and args.output is None:
        raise FieldHarnessError("a distributed run (torchrun) needs --output DIR so that every "
                                "process writes into the same run folder")
    output = args.output or new_run_dir(dataset, method_name, args.data_dir)
    if output.exists() and not output.is_dir():
        raise FieldHarnessError(f"--output {output} is a file; expected a folder (it is created "
                                "when missing)")
    if (output / "record.json").exists():
        resume = (" --resume continues a stopped run only; to train a finished one further, "
                  "pass a new --output and --weights with one of its checkpoints/last.pt "
                  "files." if getattr(args, "resume", None) else "")
        raise FieldHarnessError(f"--output {output} already contains a run record; pass a new "
                                f"folder, or delete that one to replace it.{resume}")
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(output_dir=output, data_dir=args.data_dir, seed=args.seed)
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    try:
        outcome = func(args, ctx)
    except BaseException:
        # A failed run leaves no empty run folder behind to clutter the runs list.
        if created and not any(output.iterdir()):
            output.rmdir()
        raise
    runtime = time.perf_counter() - clock
    if outcome is None:
        # A secondary process of a distributed run: rank 0 writes the record.
        return 0
    record = RunRecord.from_outcome(outcome, kind=kind, seed=args.seed, started=started,
                                    runtime_s=runtime, output_dir=output)
    record_path = record.write(output)
    _print_outcome(outcome, record_path)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    evaluator = registry.get_evaluator(args.evaluator)
    return _execute(args, "eval", evaluator.method_name(args), args.evaluator,
                    evaluator.evaluate)


def cmd_run(args: argparse.Namespace) -> int:
    baseline = registry.get_baseline(args.dataset, args.method)
    return _execute(args, "run", args.method, args.dataset, baseline.run)


def cmd_run_none(args: argparse.Namespace) -> int:
    raise FieldHarnessError("no baselines are registered yet; 'python -m harness list' shows "
                            "what is installed")


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from harness import leaderboard
    from harness.paths import runs_dir

    runs = args.runs or runs_dir(args.data_dir)
    output = args.output or runs / "leaderboard.csv"
    written = leaderboard.write(runs, output, include_sample=args.include_sample)
    for path in written.values():
        print(path)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from harness import hub

    if args.folder_only is not None:
        folder = hub.build_hub_folder(args.name, args.folder_only, version=args.dataset_version,
                                      data_dir=args.data_dir)
        print(folder)
        return 0
    if args.repo is None:
        raise FieldHarnessError("publish needs --repo ORG/NAME, or --folder-only DIR to write "
                                "the Hub-ready folder without uploading")
    url = hub.publish_dataset(args.name, args.repo, version=args.dataset_version,
                              data_dir=args.data_dir, private=not args.public,
                              allow_restricted_license=args.allow_restricted_license,
                              token=args.token)
    print(url)
    return 0


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[
        min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", force=True)


def _check_folders(args: argparse.Namespace) -> None:
    """Reject folder options that name an existing file, before any command writes."""
    for option in ("data_dir", "runs", "source"):
        path = getattr(args, option, None)
        if path is not None and path.exists() and not path.is_dir():
            flag = "--" + option.replace("_", "-")
            raise FieldHarnessError(f"{flag} {path} is a file; expected a folder")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    try:
        parser = build_parser()
    except FieldHarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        _check_folders(args)
        return args.handler(args)
    except FieldHarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of our output (e.g. `| head`) has gone; silence the flush at exit too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        # Missing files, folders that are files, permissions: a one-line message, no traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
