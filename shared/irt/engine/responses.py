"""Sparse answer data: the one structure every part of the engine consumes.

Orientation, used everywhere in this package: answers are a *long list* of
``(student, item, correct)`` triples.  Students and items are integer indices
into ``student_ids`` and ``item_ids``.  When a dense array is unavoidable it is
laid out *students x nodes* (posterior weights) or *items x nodes* (expected
counts); a dense students x items matrix is never built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Responses:
    """Answers in coordinate (long) form.

    Attributes:
        student: ``int32`` array of shape ``(n_answers,)``; index into ``student_ids``.
        item: ``int32`` array of shape ``(n_answers,)``; index into ``item_ids``.
        correct: ``int8`` array of shape ``(n_answers,)`` holding 0 or 1.
        student_ids: external student id of each student index.
        item_ids: external item id of each item index.

    At most one answer per (student, item) pair is expected (the first attempt);
    :func:`irt.engine.preprocess.prepare_rows` guarantees it.
    """

    student: np.ndarray
    item: np.ndarray
    correct: np.ndarray
    student_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    _by_student: tuple[np.ndarray, np.ndarray] | None = field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        student = np.ascontiguousarray(self.student, dtype=np.int32)
        item = np.ascontiguousarray(self.item, dtype=np.int32)
        correct = np.ascontiguousarray(self.correct, dtype=np.int8)
        if not (student.ndim == item.ndim == correct.ndim == 1):
            raise ValueError("student, item and correct must be 1-D arrays")
        if not (student.shape == item.shape == correct.shape):
            raise ValueError(
                "student, item and correct must have the same length, got "
                f"{student.shape[0]}, {item.shape[0]}, {correct.shape[0]}"
            )
        n = student.shape[0]
        if n:
            if student.min() < 0 or student.max() >= len(self.student_ids):
                raise ValueError("student index out of range of student_ids")
            if item.min() < 0 or item.max() >= len(self.item_ids):
                raise ValueError("item index out of range of item_ids")
            if correct.min() < 0 or correct.max() > 1:
                raise ValueError("correct must hold only 0 and 1")
        object.__setattr__(self, "student", student)
        object.__setattr__(self, "item", item)
        object.__setattr__(self, "correct", correct)
        object.__setattr__(self, "student_ids", tuple(self.student_ids))
        object.__setattr__(self, "item_ids", tuple(self.item_ids))

    @classmethod
    def from_arrays(
        cls,
        student: np.ndarray,
        item: np.ndarray,
        correct: np.ndarray,
        student_ids: Sequence[str] | None = None,
        item_ids: Sequence[str] | None = None,
    ) -> Responses:
        """Build from integer index arrays; ids default to ``s<i>`` and ``i<j>``."""
        student = np.asarray(student)
        item = np.asarray(item)
        if student_ids is None:
            n = int(student.max()) + 1 if student.size else 0
            student_ids = [f"s{i}" for i in range(n)]
        if item_ids is None:
            n = int(item.max()) + 1 if item.size else 0
            item_ids = [f"i{j}" for j in range(n)]
        return cls(student, item, np.asarray(correct), tuple(student_ids), tuple(item_ids))

    @classmethod
    def from_dense(cls, matrix: np.ndarray, counts: np.ndarray | None = None,
                   item_ids: Sequence[str] | None = None) -> Responses:
        """Build from a small dense students x items 0/1 matrix (NaN = not answered).

        ``counts`` optionally repeats each row (response-pattern tables such as LSAT6).
        Meant for classic test data and tests, not for production logs.
        """
        matrix = np.asarray(matrix, dtype=float)
        if counts is not None:
            matrix = np.repeat(matrix, np.asarray(counts, dtype=int), axis=0)
        s, j = np.nonzero(~np.isnan(matrix))
        return cls.from_arrays(s, j, matrix[s, j].astype(np.int8), None, item_ids)

    @property
    def n_answers(self) -> int:
        return int(self.student.shape[0])

    @property
    def n_students(self) -> int:
        return len(self.student_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def answers_per_item(self) -> np.ndarray:
        """Number of answers of each item, shape ``(n_items,)``."""
        return np.bincount(self.item, minlength=self.n_items)

    def correct_per_item(self) -> np.ndarray:
        """Number of correct answers of each item, shape ``(n_items,)``."""
        return np.bincount(self.item, weights=self.correct, minlength=self.n_items)

    def answers_per_student(self) -> np.ndarray:
        """Number of answers of each student, shape ``(n_students,)``."""
        return np.bincount(self.student, minlength=self.n_students)

    def by_student(self) -> tuple[np.ndarray, np.ndarray]:
        """Answers grouped by student: ``(order, indptr)``.

        ``order`` permutes answers so that student ``s`` owns
        ``order[indptr[s]:indptr[s + 1]]``; the sort is stable, so a student's
        answers keep their original relative order.  Cached.
        """
        if self._by_student is None:
            order = np.argsort(self.student, kind="stable")
            indptr = np.zeros(self.n_students + 1, dtype=np.int64)
            np.cumsum(self.answers_per_student(), out=indptr[1:])
            object.__setattr__(self, "_by_student", (order, indptr))
        return self._by_student  # type: ignore[return-value]

    def subset(self, mask: np.ndarray) -> Responses:
        """Keep answers where ``mask`` is true; ids and indices are unchanged."""
        return Responses(self.student[mask], self.item[mask], self.correct[mask],
                         self.student_ids, self.item_ids)
