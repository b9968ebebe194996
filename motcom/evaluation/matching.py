"""Helpers shared by the per-frame matchings: frame offsets and exact small-component matching.

TrackEval solves a Hungarian problem (``scipy.optimize.linear_sum_assignment``) in every frame.
Only the pairs with a positive score (the edges) count in its result, and those form a
maximum-weight matching of the frame's edge graph. Where that matching is unique, it can be found
without the solver, component by component. Frames where it is not unique are solved with the
solver on TrackEval's full-frame matrix, which keeps its tie-breaking.
"""

from __future__ import annotations

import numpy as np


def frame_offsets(frame_sorted: np.ndarray, num_timesteps: int) -> np.ndarray:
    """Return ``(num_timesteps + 1,)`` offsets of each 0-based timestep in a frame-sorted array."""
    return np.searchsorted(frame_sorted, np.arange(num_timesteps + 1), side="left")


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Return the distinct values of an already sorted array (cheaper than ``np.unique``)."""
    if values.size == 0:
        return values
    keep = np.empty(values.shape[0], bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def frame_mask(frames: np.ndarray, num_timesteps: int) -> np.ndarray:
    """Return a ``(num_timesteps,)`` boolean mask that is True at ``frames``."""
    mask = np.zeros(num_timesteps, bool)
    mask[frames] = True
    return mask


def connected_labels(first: np.ndarray, second: np.ndarray, num_nodes: int) -> np.ndarray:
    """Return a component label per node of the undirected graph with edges ``first[i]-second[i]``.

    Two nodes get the same label exactly when they are connected; the label is the smallest node
    index of the component. Each round hooks the larger root of every edge whose ends still
    differ onto the smaller one and then compresses paths, so a handful of vectorised rounds
    suffice. This replaces ``scipy.sparse.csgraph.connected_components``, whose import alone
    costs about a tenth of a second per command.
    """
    parent = np.arange(num_nodes)
    while True:
        root_first, root_second = parent[first], parent[second]
        differ = root_first != root_second
        if not differ.any():
            return parent
        root_first, root_second = root_first[differ], root_second[differ]
        np.minimum.at(parent, np.maximum(root_first, root_second),
                      np.minimum(root_first, root_second))
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
        first, second = first[differ], second[differ]


MAX_ENUMERATED_EDGES = 6
"""Largest component whose matchings are enumerated (2**6 - 1 edge subsets) instead of solved."""

UNIQUE_MARGIN = 1e-9
"""Relative gap the best matching of a component needs over the next one to count as unique."""


class SmallComponents:
    """Exact maximum-weight matchings of the small connected components of per-frame edge graphs.

    The positive part of any optimal assignment of a frame is a maximum-weight matching of its
    edge graph, and that matching is the union of the components' optima. Where every component
    of a frame has a unique optimum (by a relative margin of ``UNIQUE_MARGIN``, far above
    rounding), the solver's result on the full-frame matrix is that union whatever its
    tie-breaking. Components of up to ``MAX_ENUMERATED_EDGES`` edges are solved by enumerating
    their edge subsets. A frame with a larger component or a tie is reported as unresolved, and
    the caller solves it on TrackEval's full-frame matrix.

    The structure depends only on the edges, so one instance serves several weightings (CLEAR
    re-weights edges by its continuation bonus).
    """

    def __init__(
        self,
        edge_frame: np.ndarray,
        edge_gt: np.ndarray,
        edge_tracker: np.ndarray,
        num_gt: int,
        num_tracker: int,
    ):
        self.edge_frame = edge_frame
        num_edges = edge_frame.shape[0]
        self.single = np.zeros(num_edges, bool)
        self.groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.large_frames = np.zeros(0, np.int64)
        if num_edges == 0:
            return

        labels = connected_labels(edge_gt, num_gt + edge_tracker, num_gt + num_tracker)
        edge_label = labels[edge_gt]
        size = np.bincount(edge_label)[edge_label]
        self.single = size == 1
        self.large_frames = sorted_unique(edge_frame[size > MAX_ENUMERATED_EDGES])

        for k in range(2, MAX_ENUMERATED_EDGES + 1):
            members = np.flatnonzero(size == k)
            if members.size == 0:
                continue
            members = members[np.argsort(edge_label[members])].reshape(-1, k)
            subsets = (np.arange(1, 2**k)[:, np.newaxis] >> np.arange(k)) & 1  # (M, k)
            first, second = np.triu_indices(k, 1)
            gt_nodes, tracker_nodes = edge_gt[members], edge_tracker[members]
            conflict = (gt_nodes[:, first] == gt_nodes[:, second]) | (
                tracker_nodes[:, first] == tracker_nodes[:, second]
            )
            both_chosen = subsets[:, first] & subsets[:, second]  # (M, pairs)
            valid = (conflict.astype(np.int64) @ both_chosen.T) == 0  # (C, M)
            self.groups.append((members, subsets, valid))

    def solve(
        self, weight: np.ndarray, changed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the chosen edges of resolved components and the frames left unresolved.

        Args:
            weight: positive weight of each edge.
            changed: edges whose weight differs from the previous call; only their components
                are solved again. ``None`` solves every component.

        Returns:
            A boolean mask over the edges (chosen in the unique optimum of their component) and
            the sorted frames that need the full-frame solver.
        """
        if changed is None or not hasattr(self, "_chosen"):
            self._chosen = self.single.copy()
            self._unique = [np.ones(members.shape[0], bool) for members, _, _ in self.groups]
            changed = np.ones(weight.shape[0], bool)
        unresolved = [self.large_frames]
        for index, (members, subsets, valid) in enumerate(self.groups):
            rows = np.flatnonzero(changed[members].any(axis=1))
            if rows.size:
                self._solve_group(weight, members[rows], subsets, valid[rows], index, rows)
            unique = self._unique[index]
            unresolved.append(self.edge_frame[members[~unique, 0]])
        return self._chosen.copy(), np.unique(np.concatenate(unresolved))

    def _solve_group(
        self,
        weight: np.ndarray,
        members: np.ndarray,
        subsets: np.ndarray,
        valid: np.ndarray,
        index: int,
        rows: np.ndarray,
    ) -> None:
        totals = weight[members] @ subsets.T  # (C, M)
        totals[~valid] = -np.inf
        top_two = -np.partition(-totals, 1, axis=1)[:, :2]
        unique = top_two[:, 0] - top_two[:, 1] > UNIQUE_MARGIN * np.maximum(1.0, top_two[:, 0])
        best = np.argmax(totals, axis=1)
        self._chosen[members] = subsets[best].astype(bool) & unique[:, np.newaxis]
        self._unique[index][rows] = unique
