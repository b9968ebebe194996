"""The leaderboard: a long CSV with one row per run and metric, a Markdown table and a plot.

Runs of one configuration (same dataset, version, split, method, settings and data kind) that
differ only in their seed are aggregated as mean ± sample standard deviation (ddof=1). The papers'
published numbers appear as reference rows. Runs on generated sample data are left out unless
asked for, because their numbers tell nothing about a method.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from harness import atomic, registry
from harness.errors import FieldHarnessError, UnknownNameError
from harness.plugin import PublishedResult
from harness.records import RunRecord, find_records

logger = logging.getLogger(__name__)

CSV_COLUMNS = (
    "dataset", "version", "split", "method", "source", "kind", "data_kind", "config", "seed",
    "metric", "value", "date", "fieldharness_version", "git_commit", "hardware", "runtime_s",
    "reference", "record",
)


@dataclass
class Leaderboard:
    """Rows of the long CSV and the aggregated configurations behind the Markdown table."""

    rows: list[dict[str, object]] = field(default_factory=list)
    groups: dict[tuple, dict[str, list[float]]] = field(default_factory=dict)
    published: list[PublishedResult] = field(default_factory=list)
    sample_runs_left_out: int = 0
    """Runs on generated sample data, left out without ``include_sample``."""


def _config_key(record: RunRecord) -> tuple:
    config = json.dumps(record.config, sort_keys=True)
    return (record.dataset, record.version or "", record.split or "", record.method, config,
            record.data_kind)


def _hardware_label(hardware: dict) -> str:
    if hardware.get("gpu"):
        return str(hardware["gpu"])
    return f"{hardware.get('cpu_count', '?')}xCPU {hardware.get('machine', '')}".strip()


def build(runs: Path, *, include_sample: bool = False) -> Leaderboard:
    """Read every run record below ``runs`` and build the leaderboard.

    Raises:
        DataFormatError: a record file is not a valid run record.
    """
    board = Leaderboard()
    datasets: set[str] = set()
    for path in find_records(runs):
        record = RunRecord.read(path)
        if record.data_kind != "real" and not include_sample:
            logger.info("leaving out %s: it ran on %s data", path, record.data_kind)
            board.sample_runs_left_out += 1
            continue
        if not record.metrics:
            # E.g. test predictions written for the dataset authors to score.
            logger.info("leaving out %s: it has no scores", path)
            continue
        datasets.add(record.dataset)
        key = _config_key(record)
        group = board.groups.setdefault(key, {})
        for metric, value in record.metrics.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            group.setdefault(metric, []).append(float(value))
            board.rows.append({
                "dataset": record.dataset, "version": record.version or "",
                "split": record.split or "", "method": record.method, "source": "run",
                "kind": record.kind, "data_kind": record.data_kind,
                "config": json.dumps(record.config, sort_keys=True), "seed": record.seed,
                "metric": metric, "value": value, "date": record.date,
                "fieldharness_version": record.fieldharness_version,
                "git_commit": record.git_commit or "", "hardware": _hardware_label(record.hardware),
                "runtime_s": record.runtime_s, "reference": "", "record": str(path),
            })
    for name in sorted(datasets):
        try:
            plugin = registry.get_dataset(name)
        except UnknownNameError:
            continue
        for result in plugin.published_results():
            board.published.append(result)
            board.rows.append({
                "dataset": result.dataset, "version": "", "split": result.split,
                "method": result.method, "source": "paper", "kind": "", "data_kind": "real",
                "config": "", "seed": "", "metric": result.metric, "value": result.value,
                "date": "", "fieldharness_version": "", "git_commit": "", "hardware": "",
                "runtime_s": "", "reference": result.source, "record": "",
            })
    return board


def to_csv(board: Leaderboard) -> str:
    """Return the long CSV: one row per run and metric, then the papers' reference rows."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(board.rows)
    return buffer.getvalue()


def _format(values: list[float], *, counts: bool = False) -> str:
    """Format one cell: a count of a ``counts`` column as an integer, else 3 decimals."""
    if any(math.isnan(value) for value in values):
        return "nan"  # undefined for a run, e.g. MOTP without matches
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.0f}" if counts else f"{mean:.3f}"
    return f"{mean:.3f} ± {statistics.stdev(values):.3f}"


def _declared_metrics(name: str) -> list[str]:
    """Return the leaderboard metrics a dataset plugin, or else an evaluator, declares."""
    try:
        return list(registry.get_dataset(name).leaderboard_metrics)
    except UnknownNameError:
        pass
    try:
        return list(registry.get_evaluator(name).leaderboard_metrics)
    except UnknownNameError:
        return []


SHORT_LIST = 6
"""Lists of up to this many numbers are shown in full in the settings column."""


def describe_settings(config: str) -> str:
    """Return a short, readable form of a run's JSON settings for the Markdown table.

    Nested settings are shown with dotted keys (``binary.epochs=2``), short lists of numbers in
    full (``milestones=[20, 30]``), other lists by their length (``sequences: 21``), true flags
    by their name, and unset values are left out; the CSV keeps the full JSON.
    """
    if not config or config == "{}":
        return ""
    return ", ".join(_describe_items(json.loads(config), prefix=""))


def _describe_items(settings: dict, prefix: str) -> list[str]:
    parts = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if value is None or value is False:
            continue
        if value is True:
            parts.append(name)
        elif isinstance(value, dict):
            parts.extend(_describe_items(value, prefix=f"{name}."))
        elif isinstance(value, list):
            plain = all(isinstance(item, int | float | str) for item in value)
            if plain and len(value) <= SHORT_LIST:
                parts.append(f"{name}=[{', '.join(str(item) for item in value)}]")
            else:
                parts.append(f"{name}: {len(value)}")
        else:
            parts.append(f"{name}={value}")
    return parts


def _metric_columns(dataset: str, groups: dict[tuple, dict[str, list[float]]]) -> list[str]:
    declared = _declared_metrics(dataset)
    present: list[str] = []
    for key, metrics in groups.items():
        if key[0] == dataset:
            present.extend(m for m in metrics if m not in present)
    if declared:
        return [m for m in declared if m in present] or present[:8]
    return present[:8]


def to_markdown(board: Leaderboard) -> str:
    """Return one Markdown table per dataset: configurations as rows, mean ± std over seeds."""
    lines: list[str] = []
    datasets = sorted({key[0] for key in board.groups} | {r.dataset for r in board.published})
    for dataset in datasets:
        metrics = _metric_columns(dataset, board.groups)
        published = [r for r in board.published if r.dataset == dataset]
        metrics += [r.metric for r in published if r.metric not in metrics]
        lines.append(f"## {dataset}\n")
        header = ["version", "split", "method", "settings", "runs", *metrics]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        keys = sorted(k for k in board.groups if k[0] == dataset)
        # A column shows integers only when every value in it is one (IDSW, TP), so that a
        # ratio that happens to be 1 still reads 1.000 beside 0.936.
        counts = {m: all(float(v).is_integer() for k in keys for v in board.groups[k].get(m, []))
                  for m in metrics}
        for key in keys:
            _, version, split, method, config, data_kind = key
            group = board.groups[key]
            runs = max((len(v) for v in group.values()), default=0)
            settings = describe_settings(config)
            if data_kind != "real":
                settings = f"{settings} ({data_kind} data)".strip()
            cells = [version, split, method, settings, str(runs)]
            cells += [_format(group[m], counts=counts[m]) if m in group else ""
                      for m in metrics]
            lines.append("| " + " | ".join(cells) + " |")
        by_method: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        sources: dict[tuple[str, str], str] = {}
        for result in published:
            by_method[(result.split, result.method)][result.metric] = result.value
            sources[(result.split, result.method)] = result.source
        for (split, method), values in sorted(by_method.items()):
            cells = ["paper", split, method, sources[(split, method)], "-"]
            cells += [f"{values[m]:.3f}" if m in values else "" for m in metrics]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if not lines:
        if board.sample_runs_left_out:
            return (f"No runs on real data yet; {board.sample_runs_left_out} run(s) on generated "
                    "sample data were left out (pass --include-sample to list them).\n")
        return "No runs recorded yet.\n"
    return "\n".join(lines)


PLOT_LABEL_SETTINGS = 60
"""Characters of the settings shown in a plot label; the Markdown table has them in full."""


def _distinct_settings(keys: list[tuple]) -> dict[tuple, str]:
    """Return, per configuration, the settings that differ from other configurations of the
    same dataset, method and split, because a plot label needs only what distinguishes its bar."""
    items = {key: _describe_items(json.loads(key[4]) if key[4] else {}, prefix="")
             for key in keys}
    distinct = {}
    for key in keys:
        siblings = [other for other in keys if other[:4] == key[:4]]
        shared = set.intersection(*(set(items[other]) for other in siblings))
        distinct[key] = ", ".join(item for item in items[key] if item not in shared)
    return distinct


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip(", ") + "…"


def _bars(board: Leaderboard, dataset: str, distinct: dict[tuple, str]
          ) -> tuple[list[str], list[float], list[float], list[str], str]:
    """Return the bar labels, means, errors and colours of one dataset, and the axis label.

    Each configuration shows the first leaderboard metric it has, so methods that report
    different metrics (BIOSCAN-5M clustering and BarcodeBERT) all get a bar. The labels then
    name the metric.
    """
    columns = _metric_columns(dataset, board.groups)
    keys = sorted(k for k in board.groups if k[0] == dataset)
    chosen = {key: next((m for m in columns if board.groups[key].get(m)), None) for key in keys}
    drawn = {metric for metric in chosen.values() if metric is not None}
    labels: list[str] = []
    means: list[float] = []
    errors: list[float] = []
    colors: list[str] = []
    for key in keys:
        metric = chosen[key]
        if metric is None:
            continue
        values = board.groups[key][metric]
        # One bar per table row: the settings tell apart runs of one method on different
        # sequence sets or thresholds.
        settings = _shorten(distinct[key], PLOT_LABEL_SETTINGS)
        named = f"{metric}, " if len(drawn) > 1 else ""
        labels.append(f"{key[3]} ({named}{key[2] or '-'}{', ' + settings if settings else ''})")
        if any(math.isnan(value) for value in values):
            means.append(math.nan)  # drawn as no bar, as the table shows "nan"
            errors.append(0.0)
        else:
            means.append(statistics.fmean(values))
            errors.append(statistics.stdev(values) if len(values) > 1 else 0.0)
        colors.append("tab:blue")
    for result in board.published:
        if result.dataset == dataset and result.metric in (drawn or set(columns[:1])):
            named = f"{result.metric}, " if len(drawn) > 1 else ""
            labels.append(f"{result.method} ({named}{result.split}, paper)")
            means.append(result.value)
            errors.append(0.0)
            colors.append("tab:gray")
    axis = next(iter(drawn)) if len(drawn) == 1 else "score (metric in each label)"
    return labels, means, errors, colors, axis


def plot(board: Leaderboard, path: Path) -> Path | None:
    """Draw, per dataset, the first leaderboard metric of every configuration as a bar chart.

    The first metric is taken per configuration, among those it recorded. Methods of one dataset
    that report different metrics are thus all drawn, and the bar labels then name the metric.

    Recorded runs are blue, with the standard deviation over seeds as error bars, and the papers'
    reference numbers are grey.

    Returns the PNG path, or ``None`` when there is nothing to draw.
    """
    datasets = sorted({key[0] for key in board.groups})
    if not datasets:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    distinct = _distinct_settings(list(board.groups))
    bars = sum(1 for key in board.groups) + len(board.published)
    fig, axes = plt.subplots(len(datasets), 1, squeeze=False,
                             figsize=(11, 2.0 + 1.0 * len(datasets) + 0.3 * bars))
    for ax, dataset in zip(axes[:, 0], datasets, strict=True):
        labels, means, errors, colors, metric = _bars(board, dataset, distinct)
        # Positions, not the labels, place the bars: two configurations whose labels read the
        # same must not be drawn on one spot.
        positions = list(range(len(labels)))
        ax.barh(positions, means, xerr=errors, color=colors)
        ax.set_yticks(positions, labels)
        ax.set_xlabel(metric)
        ax.set_title(dataset)
        finite = [m for m in means if math.isfinite(m)]
        if finite and min(finite) >= 0:
            ax.set_xlim(0, max(finite) * 1.1 or 1)
    fig.tight_layout()
    with atomic.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def write(runs: Path, output: Path, *, include_sample: bool = False) -> dict[str, Path]:
    """Build the leaderboard from ``runs`` and write ``output`` (CSV) plus ``.md`` and ``.png``
    files beside it, each atomically. Returns the written paths by kind.

    Raises:
        FieldHarnessError: ``runs`` does not exist.
    """
    runs = Path(runs)
    if not runs.is_dir():
        raise FieldHarnessError(
            f"runs folder not found: {runs}; run 'python -m harness eval ...' first, or pass "
            "--runs DIR")
    board = build(runs, include_sample=include_sample)
    if board.sample_runs_left_out:
        logger.warning("%d run(s) on generated sample data were left out; pass --include-sample "
                       "to list them", board.sample_runs_left_out)
    output = Path(output)
    written = {"csv": output}
    atomic.write_text(output, to_csv(board))
    markdown = output.with_suffix(".md")
    atomic.write_text(markdown, to_markdown(board))
    written["markdown"] = markdown
    png = plot(board, output.with_suffix(".png"))
    if png is not None:
        written["plot"] = png
    return written
