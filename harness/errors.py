"""The exception hierarchy of fieldharness.

Every error the package raises on purpose derives from :class:`FieldHarnessError`, so a caller can
catch them all in one place while the command line turns them into a one-line message and exit
status 2.
"""

from __future__ import annotations

from collections.abc import Iterable
from os import PathLike


class FieldHarnessError(Exception):
    """Base class of every error fieldharness raises on purpose."""


class UnknownNameError(FieldHarnessError, KeyError):
    """A dataset, split, config, version, metric or method name that is not known."""

    def __init__(self, kind: str, value: object, valid: Iterable[object]):
        self.kind = kind
        self.value = value
        self.valid = sorted(str(v) for v in valid)
        choices = ", ".join(self.valid) if self.valid else "(none registered)"
        super().__init__(f"unknown {kind} {value!r}; valid values are: {choices}")

    def __str__(self) -> str:  # KeyError would otherwise print the message in quotes
        return str(self.args[0])


class DataFormatError(FieldHarnessError, ValueError):
    """A source or user file that does not follow its format.

    The message names the file, the 1-based line, the field, the value found and what a valid
    file has there, e.g. ``gt/gt.txt:12: field 'frame' is '0'; expected an integer >= 1``.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | PathLike[str] | None = None,
        line: int | None = None,
        field: str | None = None,
        value: object = None,
        expected: str | None = None,
    ):
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.value = value
        self.expected = expected
        self.problem = problem
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            where += ": "
        text = self.problem
        if self.field is not None:
            text += f" (field {self.field!r}"
            if self.value is not None:
                text += f", value {self.value!r}"
            text += ")"
        elif self.value is not None:
            text += f" (value {self.value!r})"
        if self.expected:
            text += f"; expected {self.expected}"
        return where + text


class ChecksumError(FieldHarnessError):
    """A file whose checksum differs from the published or recorded one."""


class DownloadError(FieldHarnessError):
    """A download that failed on every mirror after all retries."""


class NotPreparedError(FieldHarnessError):
    """A dataset without a prepared copy in the data home; the message names the command to run."""


class StaleDataError(FieldHarnessError):
    """A prepared copy that no longer matches its manifest or its source files."""


class LockTimeoutError(FieldHarnessError):
    """Another process holds the lock of the same prepared dataset for too long."""


class EvaluationError(FieldHarnessError):
    """Predictions or tracker output that cannot be scored against the ground truth."""


class MissingDependencyError(FieldHarnessError, ImportError):
    """An optional dependency (an extra such as ``train``) that is not installed."""
