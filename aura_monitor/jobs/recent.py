"""A list that keeps only its last `maxlen` items: a deque's job at a tenth of its memory for a few items.

Why: a deque allocates a 64-slot block (~620 bytes) as soon as it exists; each tracked job held two of them
(progress samples, transitions), ~1.5 KB per job before its first update: 150 MB at 100,000 jobs, most of
them finished and holding one or two items each.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


class Recent(list[T]):
    """The last `maxlen` items appended (oldest first); append and extend drop the oldest beyond it."""

    __slots__ = ("maxlen",)

    def __init__(self, maxlen: int, items: Iterable[T] = ()) -> None:
        super().__init__()
        self.maxlen = maxlen
        self.extend(items)

    def append(self, item: T) -> None:
        super().append(item)
        if len(self) > self.maxlen:
            del self[0]  # O(maxlen), and maxlen is small (tens): cheaper than a deque's memory

    def extend(self, items: Iterable[T]) -> None:
        super().extend(items)
        if len(self) > self.maxlen:
            del self[: len(self) - self.maxlen]

    def copy(self) -> Recent[T]:
        return Recent(self.maxlen, self)
