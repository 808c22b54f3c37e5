"""Exercise checks: each looks at the live daemon and says pass, or what is still wrong.

A check returns a :class:`Result` rather than raising, so a learner's "not yet" is one clear
line in the notebook, and tests can assert ``result.passed`` for both a wrong answer and the
solution. One module per notebook (``nb00``, ``nb01``…).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    exercise: str
    passed: bool
    message: str

    def __str__(self) -> str:
        mark = "PASS" if self.passed else "NOT YET"
        return f"{mark} · Exercise {self.exercise}: {self.message}"

    def __repr__(self) -> str:  # what a notebook cell shows
        return str(self)

    def __bool__(self) -> bool:
        return self.passed


def passed(exercise: str, message: str) -> Result:
    return Result(exercise, True, message)


def not_yet(exercise: str, message: str) -> Result:
    return Result(exercise, False, message)
