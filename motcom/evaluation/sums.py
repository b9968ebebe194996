"""Row sums of sparse per-frame matrices that are bit-identical to numpy's dense ``sum``.

numpy 2.x sums a contiguous run of float64 with pairwise summation (``DOUBLE_pairwise_sum`` in
numpy's loops). Fewer than 8 values are added left to right. Up to 128 values go to 8 interleaved
accumulators that are then combined in a fixed tree, and longer runs are split in two. A reduction
over the first axis of a 2-D array adds the rows left to right instead, unless the array has a
single column, which numpy treats as one contiguous run. Zeros never change a partial sum, so a
row with at most two non-zero values has the same sum in any order, and a row with fewer than 8
values is summed left to right either way. The remaining rows are summed over their non-zero values
in numpy's pairwise order, without building the dense rows.
"""

from __future__ import annotations

import numpy as np

PAIRWISE_MIN_LENGTH = 8
"""Shortest run that numpy sums with interleaved accumulators rather than left to right."""


def sequential_or_pairwise_sums(
    owner: np.ndarray,
    position: np.ndarray,
    value: np.ndarray,
    run_length: np.ndarray,
    pairwise: np.ndarray,
) -> np.ndarray:
    """Sum sparse values per owner the way numpy sums the owner's dense run.

    Args:
        owner: ``(k,)`` owner index of each non-zero value; the values of one owner must appear in
            increasing ``position`` order.
        position: ``(k,)`` index of each value inside its owner's dense run.
        value: ``(k,)`` the non-zero values.
        run_length: ``(num_owners,)`` length of each owner's dense run.
        pairwise: ``(num_owners,)`` True where numpy sums the run pairwise, False where it adds
            the values left to right.

    Returns:
        ``(num_owners,)`` sums, bit-identical to numpy's.
    """
    num_owners = run_length.shape[0]
    sums = np.bincount(owner, weights=value, minlength=num_owners)
    nonzero = np.bincount(owner, minlength=num_owners)
    rebuild = pairwise & (nonzero >= 3) & (run_length >= PAIRWISE_MIN_LENGTH)
    if not rebuild.any():
        return sums

    selected = np.flatnonzero(rebuild[owner])
    owner_sel, position_sel = owner[selected], position[selected]
    if np.any(owner_sel[1:] < owner_sel[:-1]):
        order = np.lexsort((position_sel, owner_sel))
        selected, owner_sel, position_sel = selected[order], owner_sel[order], position_sel[order]
    rebuilt = sparse_pairwise_sums(owner_sel, position_sel, value[selected], run_length, num_owners)
    sums[rebuild] = rebuilt[rebuild]
    return sums


PAIRWISE_BLOCK = 128
"""Maximum run length that numpy sums in one block of 8 accumulators (``PW_BLOCKSIZE``)."""


def _block_sums(values: np.ndarray, leaf: np.ndarray, offset: np.ndarray, length: np.ndarray,
                num_leaves: int) -> np.ndarray:
    """Sum the values of each leaf run of at most 128 values as numpy does."""
    pairwise_end = np.where(length >= PAIRWISE_MIN_LENGTH, length - length % 8, 0)
    in_accumulator = offset < pairwise_end
    slot = np.flatnonzero(in_accumulator)
    accumulator_index = leaf[slot] * 8 + offset[slot] % 8
    # bincount and ufunc.at add in input order, so each accumulator adds left to right.
    if values.ndim == 1:
        accumulators = np.bincount(
            accumulator_index, weights=values[slot], minlength=num_leaves * 8
        ).astype(np.float64, copy=False).reshape(num_leaves, 8)
    else:
        accumulators = np.zeros((num_leaves * 8,) + values.shape[1:])
        np.add.at(accumulators, accumulator_index, values[slot])
        accumulators = accumulators.reshape((num_leaves, 8) + values.shape[1:])
    a = accumulators
    sums = ((a[:, 0] + a[:, 1]) + (a[:, 2] + a[:, 3])) + ((a[:, 4] + a[:, 5]) + (a[:, 6] + a[:, 7]))

    # The at most 7 values after the accumulated part are added one at a time, in order.
    rest = np.flatnonzero(~in_accumulator)
    if values.ndim == 1:
        # bincount adds each leaf's tree sum first, then its remaining values in input order.
        return np.bincount(
            np.concatenate([np.arange(num_leaves), leaf[rest]]),
            weights=np.concatenate([sums, values[rest]]),
            minlength=num_leaves,
        )
    rank = offset[rest] - pairwise_end[rest]
    for r in range(PAIRWISE_MIN_LENGTH - 1):
        at_rank = rest[rank == r]
        if at_rank.size:
            sums[leaf[at_rank]] += values[at_rank]
    return sums


def sparse_pairwise_sums(
    owner: np.ndarray, position: np.ndarray, values: np.ndarray, run_length: np.ndarray,
    num_owners: int,
) -> np.ndarray:
    """Sum sparse positive values per owner exactly as numpy's pairwise ``sum`` of the dense run.

    numpy splits a run of more than 128 values at ``n2 = n // 2 - (n // 2) % 8`` and adds the
    sums of the halves. Shorter runs are summed as described in the module docstring. The zeros
    of the dense run leave every partial sum unchanged, so only the tree nodes that contain a
    value are built, level by level.

    NOTE: this follows numpy's own loops (checked with numpy 2.4.6). The tests compare it with
    ``np.sum``, so they fail on a numpy release that sums in another order.

    Args:
        owner: ``(k,)`` owner of each value; the entries must be sorted by owner, then position.
        position: ``(k,)`` index of each value inside its owner's dense run, unique per owner.
        values: ``(k,)`` or ``(k, m)`` positive values (zeros are allowed and ignored).
        run_length: ``(num_owners,)`` length of each owner's dense run.
        num_owners: number of owners.

    Returns:
        ``(num_owners,)`` or ``(num_owners, m)`` sums, bit-identical to numpy's ``sum`` of the
        dense runs (0 for owners without values).
    """
    result = np.zeros((num_owners,) + values.shape[1:])
    if owner.size == 0:
        return result
    start = np.zeros(owner.shape[0], np.int64)
    length = run_length[owner].astype(np.int64)
    starts_per_level = [start]
    while True:
        split = length > PAIRWISE_BLOCK
        if not split.any():
            break
        half = length // 2
        half -= half % 8
        right = split & (position >= start + half)
        left = split & ~right
        start = np.where(right, start + half, start)
        length = np.where(right, length - half, np.where(left, half, length))
        starts_per_level.append(start)

    new_node = np.empty(owner.shape[0], bool)
    new_node[0] = True
    np.not_equal(owner[1:], owner[:-1], out=new_node[1:])
    leaf_start = starts_per_level[-1]
    new_leaf = new_node.copy()
    new_leaf[1:] |= leaf_start[1:] != leaf_start[:-1]
    leaf = np.cumsum(new_leaf) - 1
    sums = _block_sums(values, leaf, position - leaf_start, length, int(leaf[-1]) + 1)

    # Add the two children of each split node, from the deepest level up to the root.
    node_first = np.flatnonzero(new_leaf)
    for level_start in reversed(starts_per_level[:-1]):
        parent_new = new_node.copy()
        parent_new[1:] |= level_start[1:] != level_start[:-1]
        parent_first = np.flatnonzero(parent_new[node_first])
        sums = np.add.reduceat(sums, parent_first, axis=0)
        node_first = node_first[parent_first]
    result[owner[node_first]] = sums
    return result
