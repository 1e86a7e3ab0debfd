"""The one error type the data package raises for problems a user can cause."""

from __future__ import annotations

import os


class DataError(Exception):
    """A problem with the user's data or data options.

    The message always names the offending file (or folder) and says what to do about it.

    Attributes:
      path: the file or folder the problem is about ("" when there is none).
      problem: what is wrong, one sentence.
      fix: what the user can do about it, one sentence.
    """

    def __init__(self, path: str | os.PathLike[str] | None, problem: str, fix: str):
        self.path = os.fspath(path) if path is not None else ""
        self.problem = problem
        self.fix = fix
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{problem}. Fix: {fix}")

    def __reduce__(self):  # keep the three fields when pickled across worker processes
        return (type(self), (self.path, self.problem, self.fix))


def skip_hint() -> str:
    """The standard sentence telling a user how to skip bad volumes instead of stopping."""
    return "or pass strict=False (kmri-prepare --no-strict) to skip bad volumes and report them"
