"""scipy's ``linear_sum_assignment``, loaded without the rest of ``scipy.optimize``.

Importing ``scipy.optimize`` runs its ``__init__``, which loads every solver (linprog, fft and
linalg helpers, ...): about 0.35 s and 50 MB of a command that evaluates MOT17 in about a second
(measured with scipy 1.17 on a 2-core VM). The assignment solver itself is the compiled extension
``scipy/optimize/_lsap*.so``. Loading that file directly gives scipy's own function, so the
matchings, tie-breaking included, are those of ``scipy.optimize.linear_sum_assignment``. When the
file is not where this scipy release keeps it, the public import is used instead.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import sys
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

_MODULE = "scipy.optimize._lsap"


def _load_solver() -> Callable:
    if _MODULE in sys.modules:
        return sys.modules[_MODULE].linear_sum_assignment
    try:
        import scipy

        folder = Path(scipy.__file__).parent / "optimize"
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = folder / f"_lsap{suffix}"
            if path.is_file():
                loader = importlib.machinery.ExtensionFileLoader(_MODULE, str(path))
                spec = importlib.util.spec_from_file_location(_MODULE, path, loader=loader)
                module = importlib.util.module_from_spec(spec)
                loader.exec_module(module)
                return module.linear_sum_assignment
    except (ImportError, OSError, AttributeError) as exc:
        logger.debug("loading %s directly failed (%s); importing scipy.optimize", _MODULE, exc)
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment


linear_sum_assignment = _load_solver()
