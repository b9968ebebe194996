"""Sewer-ML class codes and class-importance weights (CIW).

Sources: the Sewer-ML paper (Haurum & Moeslund, "Sewer-ML: A Multi-Label Sewer Defect
Classification Dataset and Benchmark", CVPR 2021), Table 1, and the official evaluation script
of its repository (bitbucket.org/aauvap/sewer-ml, ``calculate_results.py``), which writes the
same 17 codes and weights as ``Labels`` and ``LabelWeights`` into every result JSON.
"""

from __future__ import annotations

# The 17 defect codes in the order of the annotation CSV columns and of the official metric code.
DEFECT_CODES: tuple[str, ...] = (
    "RB", "OB", "PF", "DE", "FS", "IS", "RO", "IN", "AF",
    "BE", "FO", "GR", "PH", "PB", "OS", "OP", "OK",
)  # fmt: skip

# The implicit 18th column: an image is Normal when it has none of the 17 defect labels.
NORMAL = "Normal"

# The 18 columns of every per-class count and score array: the defect codes, then Normal.
COLUMNS: tuple[str, ...] = (*DEFECT_CODES, NORMAL)

# English meaning of each code. The codes come from the Danish DANVA "Fotomanualen" standard.
DEFECT_DESCRIPTIONS: dict[str, str] = {
    "RB": "cracks, breaks and collapses",
    "OB": "surface damage",
    "PF": "production error",
    "DE": "deformation",
    "FS": "displaced joint",
    "IS": "intruding sealing material",
    "RO": "roots",
    "IN": "infiltration",
    "AF": "settled deposits",
    "BE": "attached deposits",
    "FO": "obstacle",
    "GR": "branch pipe",
    "PH": "chiseled connection",
    "PB": "drilled connection",
    "OS": "lateral reinstatement cuts",
    "OP": "connection with transition profile",
    "OK": "connection with construction changes",
}

# Class-importance weights in DEFECT_CODES order, rounded to four decimals as in Table 1 of the
# paper and in the ``LabelWeights`` of the official result JSON. Normal has no weight.
CIW: tuple[float, ...] = (
    1.0000, 0.5518, 0.2896, 0.1622, 0.6419, 0.1847, 0.3559, 0.3131, 0.0811,
    0.2275, 0.2477, 0.0901, 0.4167, 0.4167, 0.9009, 0.3829, 0.4396,
)  # fmt: skip

# The unnormalised DANVA point scores behind CIW (CIW = points / 5.55, the RB score). The
# authors' later MSHViT repository (github.com/JoakimHaurum/MSHViT, ``calculate_results.py``)
# weights F2 with these. On the counts of a real CT-GNN result over the Sewer-ML Train split,
# F2_CIW with these weights differs from F2_CIW with CIW by 1.7e-6.
CIW_POINTS: tuple[float, ...] = (
    5.55, 3.0625, 1.6075, 0.9, 3.5625, 1.025, 1.975, 1.7375, 0.45,
    1.2625, 1.375, 0.5, 2.3125, 2.3125, 5.0, 2.125, 2.44,
)  # fmt: skip
