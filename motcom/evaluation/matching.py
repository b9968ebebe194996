"""Helpers shared by the per-frame matchings: frame offsets and forced-match detection.

TrackEval solves a Hungarian problem (``scipy.optimize.linear_sum_assignment``) in every frame.
When every gt box and every tracker box of a frame has at most one candidate edge (a pair with a
positive score), the maximum-score assignment must contain every edge, because dropping one
could be undone by a swap that gains its score. The optimum is then unique, so taking the edges
gives what the solver returns without calling it. Frames with a box on two or more edges are
solved with the solver on TrackEval's full-frame matrix, which keeps its tie-breaking.
"""

from __future__ import annotations

import numpy as np


def frame_offsets(frame_sorted: np.ndarray, num_timesteps: int) -> np.ndarray:
    """Return ``(num_timesteps + 1,)`` offsets of each 0-based timestep in a frame-sorted array."""
    return np.searchsorted(frame_sorted, np.arange(num_timesteps + 1), side="left")


def forced_pairs_mask(
    edge_frame: np.ndarray,
    edge_gt: np.ndarray,
    edge_tracker: np.ndarray,
    num_gt: int,
    num_tracker: int,
) -> np.ndarray:
    """Mark the edges whose frame has a forced matching (no box on two or more edges).

    Args:
        edge_frame: frame of each edge.
        edge_gt: gt box index of each edge, unique per frame only through the box index.
        edge_tracker: tracker box index of each edge.
        num_gt: number of gt boxes, for the degree count.
        num_tracker: number of tracker boxes.

    Returns:
        Boolean mask over the edges: True where the whole frame of the edge is forced.
    """
    if edge_frame.size == 0:
        return np.zeros(0, bool)
    degree_gt = np.bincount(edge_gt, minlength=num_gt)
    degree_tracker = np.bincount(edge_tracker, minlength=num_tracker)
    shared = (degree_gt[edge_gt] > 1) | (degree_tracker[edge_tracker] > 1)
    if not shared.any():
        return np.ones(edge_frame.shape[0], bool)
    return ~np.isin(edge_frame, np.unique(edge_frame[shared]))


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
    their edge subsets; a frame with a larger component or a tie is reported as unresolved, for
    the caller to solve on TrackEval's full-frame matrix.

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
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        self.edge_frame = edge_frame
        num_edges = edge_frame.shape[0]
        self.single = np.zeros(num_edges, bool)
        self.groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.large_frames = np.zeros(0, np.int64)
        if num_edges == 0:
            return

        num_nodes = num_gt + num_tracker
        graph = coo_matrix(
            (np.ones(num_edges), (edge_gt, num_gt + edge_tracker)), shape=(num_nodes, num_nodes)
        )
        _, labels = connected_components(graph, directed=False)
        edge_label = labels[edge_gt]
        size = np.bincount(edge_label)[edge_label]
        self.single = size == 1
        self.large_frames = np.unique(edge_frame[size > MAX_ENUMERATED_EDGES])

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

    def solve(self, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the chosen edges of resolved components and the frames left unresolved.

        Args:
            weight: positive weight of each edge.

        Returns:
            A boolean mask over the edges (chosen in the unique optimum of their component) and
            the sorted frames that need the full-frame solver.
        """
        chosen = self.single.copy()
        unresolved = [self.large_frames]
        for members, subsets, valid in self.groups:
            totals = weight[members] @ subsets.T  # (C, M)
            totals[~valid] = -np.inf
            top_two = -np.partition(-totals, 1, axis=1)[:, :2]
            unique = top_two[:, 0] - top_two[:, 1] > UNIQUE_MARGIN * np.maximum(1.0, top_two[:, 0])
            best = np.argmax(totals, axis=1)
            picked = subsets[best].astype(bool) & unique[:, np.newaxis]
            chosen[members[picked]] = True
            unresolved.append(self.edge_frame[members[~unique, 0]])
        return chosen, np.unique(np.concatenate(unresolved))
