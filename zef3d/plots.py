"""Plots of 3D-ZeF trajectories: tracks against ground truth in the three axis projections."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from harness.plotting import new_figure, save_png

__all__ = ["plot_trajectories"]

_PROJECTIONS = (("x", "y", "top (x-y)"), ("x", "z", "front (x-z)"), ("y", "z", "side (y-z)"))


def plot_trajectories(tracks: pl.DataFrame, path: Path, *, gt: pl.DataFrame | None = None,
                      title: str = "", tank: tuple[float, float] | None = None) -> Path:
    """Plot 3D tracks, and ground truth when given, in the x-y, x-z and y-z projections.

    Ground-truth trajectories are drawn as wide grey lines, tracks in one colour per id.

    Args:
        tracks: Columns frame, id, x, y, z (centimetres).
        path: The PNG to write (atomically).
        gt: Ground truth with the same columns, or ``None``.
        title: Figure title, e.g. the sequence name.
        tank: Tank width and depth in centimetres, drawn as the x and y axis limits.

    Returns:
        ``path``.
    """
    figure = new_figure(13.0, 4.4)
    axes = figure.subplots(1, 3)
    colours = [f"C{index % 10}" for index in range(10)]
    for axis, (horizontal, vertical, label) in zip(axes, _PROJECTIONS, strict=True):
        if gt is not None:
            for (_,), part in gt.sort("frame").group_by(["id"], maintain_order=True):
                axis.plot(part[horizontal], part[vertical], color="0.6", linewidth=2.5,
                          alpha=0.6, label=None)
        for number, ((track_id,), part) in enumerate(
                tracks.sort("frame").group_by(["id"], maintain_order=True)):
            axis.plot(part[horizontal], part[vertical], color=colours[number % len(colours)],
                      linewidth=1.0, label=f"track {track_id}")
        if tank is not None and horizontal == "x":
            axis.set_xlim(0.0, tank[0])
        if tank is not None and vertical == "y":
            axis.set_ylim(0.0, tank[1])
        axis.set_xlabel(f"{horizontal} (cm)")
        axis.set_ylabel(f"{vertical} (cm)")
        axis.set_title(label)
        axis.set_aspect("equal", adjustable="box")
    if tracks.height:
        handles, labels = axes[0].get_legend_handles_labels()
        if gt is not None:
            from matplotlib.lines import Line2D

            handles.append(Line2D([], [], color="0.6", linewidth=2.5, alpha=0.6))
            labels.append("ground truth")
        axes[-1].legend(handles, labels, fontsize="small", loc="best")
    if title:
        figure.suptitle(title)
    return save_png(figure, path)
