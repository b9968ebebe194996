"""Row sums of sparse per-frame matrices that are bit-identical to numpy's dense ``sum``.

numpy 2.x sums a contiguous run of float64 with pairwise summation (``DOUBLE_pairwise_sum`` in
numpy's loops). Fewer than 8 values are added left to right. Up to 128 values go to 8 interleaved
accumulators that are then combined in a fixed tree, and longer runs are split in two. A reduction
over the first axis of a 2-D array adds the rows left to right instead, unless the array has a
single column, which numpy treats as one contiguous run. Zeros never change a partial sum, so a
row with at most two non-zero values has the same sum in any order, and a row with fewer than 8
values is summed left to right either way. Only the remaining rows are rebuilt densely and summed
by numpy itself.
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

    selected = rebuild[owner]
    owner_sel, position_sel, value_sel = owner[selected], position[selected], value[selected]
    length_sel = run_length[owner_sel]
    for length in np.unique(length_sel):
        in_group = length_sel == length
        owners = np.unique(owner_sel[in_group])
        local = np.searchsorted(owners, owner_sel[in_group])
        dense = np.zeros((owners.shape[0], int(length)))
        dense[local, position_sel[in_group]] = value_sel[in_group]
        sums[owners] = dense.sum(axis=1)
    return sums
