"""fieldharness core: dataset registry, prepare, load, evaluate, record and compare."""

from harness.errors import (
    ChecksumError,
    DataFormatError,
    DownloadError,
    EvaluationError,
    FieldHarnessError,
    LockTimeoutError,
    MissingDependencyError,
    NotPreparedError,
    StaleDataError,
    UnknownNameError,
)

__version__ = "0.1.0"

__all__ = [
    "ChecksumError",
    "DataFormatError",
    "DownloadError",
    "EvaluationError",
    "FieldHarnessError",
    "LockTimeoutError",
    "MissingDependencyError",
    "NotPreparedError",
    "StaleDataError",
    "UnknownNameError",
    "__version__",
    "load_dataset",
]


def __getattr__(name: str):
    # Imported lazily so that ``import harness`` stays light (no datasets/pyarrow import cost).
    if name == "load_dataset":
        from harness.loading import load_dataset

        return load_dataset
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
