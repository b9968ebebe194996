"""``python -m harness``: the command line."""

import os
import sys
from pathlib import Path


def _drop_working_directory() -> None:
    """Keep the working directory's folders from shadowing the installed dataset packages.

    ``python -m`` puts the working directory first on ``sys.path``. A data folder there named
    like a package (``zef3d/``, ``virada/`` from ``sample --output``) is then imported as an
    empty namespace package in place of an editable install. When fieldharness itself comes
    from another folder, none of its code is in the working directory, which is then dropped.
    """
    cwd = Path.cwd().resolve()
    if Path(__file__).resolve().parent.parent == cwd:
        return
    sys.path[:] = [entry for entry in sys.path
                   if Path(entry or os.curdir).resolve() != cwd]
    # A package already imported from there (``./harness/`` itself) is imported again.
    for name, module in list(sys.modules.items()):
        paths = getattr(module, "__path__", None)
        if getattr(module, "__file__", None) is None and paths is not None and any(
                Path(path).resolve().is_relative_to(cwd) for path in paths):
            del sys.modules[name]


_drop_working_directory()

from harness.cli import main  # noqa: E402

raise SystemExit(main())
