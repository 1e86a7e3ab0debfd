"""The error the task modules (simulate, infer, evaluate) raise for problems a user can cause."""

from __future__ import annotations


class TaskError(Exception):
    """Bad input to a command: parameters out of range, incompatible sizes, missing files.

    The message names the offending thing and says what to do; the CLIs print it as one line.
    """
