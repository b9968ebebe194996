"""Helpers shared by the per-frame matchings: frame offsets and exact matching without a solver.

TrackEval solves a Hungarian problem (``scipy.optimize.linear_sum_assignment``) in every frame.
Only the pairs with a positive score (the edges) count in its result, and those form a
maximum-weight matching of the frame's edge graph. Where that matching is unique, it can be found
without the solver: component by component (:class:`SmallComponents`), or for a whole frame by a
dual certificate (:func:`certify_unique_matching`). Frames where uniqueness is not shown are
solved with the solver on TrackEval's full-frame matrix, which keeps its tie-breaking.
"""

from __future__ import annotations

import numpy as np


def frame_offsets(frame_sorted: np.ndarray, num_timesteps: int) -> np.ndarray:
    """Return ``(num_timesteps + 1,)`` offsets of each 0-based timestep in a frame-sorted array."""
    return np.searchsorted(frame_sorted, np.arange(num_timesteps + 1), side="left")


def stable_order(values: np.ndarray, upper: int) -> np.ndarray:
    """Return the stable sorting permutation of non-negative integers below ``upper``.

    numpy sorts integers of at most 16 bits with a radix sort, so a small range is cast first.
    """
    if upper <= 2**16:
        return np.argsort(values.astype(np.uint16), kind="stable")
    return np.argsort(values, kind="stable")


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
            members = members[np.argsort(edge_label[members], kind="stable")].reshape(-1, k)
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


CERTIFICATE_MARGIN = 1e-9
"""Relative slack that every edge outside the candidate matching must keep below its dual bound.

The solver's rounding errors on these matrices are many orders of magnitude smaller.
"""


def certify_unique_matching(
    edge_frame: np.ndarray,
    edge_gt: np.ndarray,
    edge_tracker: np.ndarray,
    weight: np.ndarray,
    num_gt: int,
    num_tracker: int,
    num_timesteps: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Find the frames whose maximum-weight matching is provably unique, without a solver.

    The candidate matching takes every edge that is the maximum of both its gt row and its
    tracker column. Each candidate edge ``e = (i, j)`` gives both of its boxes the dual
    ``w_e / 2``, and the other boxes get 0. When every other edge ``(i, j)`` stays below
    ``u_i + v_j`` by a relative margin of ``CERTIFICATE_MARGIN``, these duals are optimal and
    tight only on the candidate. Then the candidate is the unique maximum-weight matching, and
    ``linear_sum_assignment`` on the full-frame matrix returns its edges (plus zero-score pairs)
    whatever its tie-breaking. A frame that fails the test is left to the solver.

    Args:
        edge_frame: frame of each edge (a pair with a positive weight).
        edge_gt: gt box index of each edge, global over the sequence, in increasing order.
        edge_tracker: tracker box index of each edge, global over the sequence.
        weight: positive weight of each edge.
        num_gt: number of gt boxes.
        num_tracker: number of tracker boxes.
        num_timesteps: number of frames.

    Returns:
        A boolean mask over the edges (in the candidate matching) and the sorted frames whose
        candidate is not proven to be the unique optimum.
    """
    if edge_frame.size == 0:
        return np.zeros(0, bool), np.zeros(0, np.int64)
    row_start = np.flatnonzero(np.r_[True, edge_gt[1:] != edge_gt[:-1]])
    row_max = np.zeros(num_gt)
    row_max[edge_gt[row_start]] = np.maximum.reduceat(weight, row_start)
    col_max = np.zeros(num_tracker)
    np.maximum.at(col_max, edge_tracker, weight)
    candidate = (weight == row_max[edge_gt]) & (weight == col_max[edge_tracker])

    candidate_gt, candidate_tracker = edge_gt[candidate], edge_tracker[candidate]
    candidate_weight = weight[candidate]
    failed_frames = [edge_frame[candidate][candidate_weight <= CERTIFICATE_MARGIN]]
    # A tie for a row's or column's maximum can put two candidate edges on one box.
    row_count = np.add.reduceat(candidate, row_start, dtype=np.int64)
    failed_frames.append(edge_frame[row_start[row_count > 1]])
    col_count = np.bincount(candidate_tracker, minlength=num_tracker)
    if np.any(col_count > 1):
        failed_frames.append(edge_frame[candidate & (col_count[edge_tracker] > 1)])

    row_dual = np.zeros(num_gt)
    row_dual[candidate_gt] = candidate_weight / 2
    col_dual = np.zeros(num_tracker)
    col_dual[candidate_tracker] = candidate_weight / 2
    edge_row_dual = row_dual[edge_gt]
    edge_col_dual = col_dual[edge_tracker]
    bound = edge_row_dual + edge_col_dual
    # Both duals are at most half the larger candidate weight next to the edge.
    margin = CERTIFICATE_MARGIN * 2 * np.maximum(edge_row_dual, edge_col_dual)
    failed = ~candidate & ~(weight + margin < bound)
    failed_frames.append(edge_frame[failed])
    failed_mask = frame_mask(np.concatenate(failed_frames), num_timesteps)
    return candidate, np.flatnonzero(failed_mask)
