"""The order torch's CPU ``argsort(descending=True)`` gives, ties included, without torch.

Ultralytics' NMS takes boxes best score first with torch's (unstable) sort, and an int8
model gives many boxes exactly equal scores; when two such boxes overlap, the one taken
first is the one kept. Torch sorts with libstdc++'s ``std::sort`` (introsort: median-of-three
quicksort down to runs of 16, a heapsort below a depth limit, then one insertion sort), so
this is that algorithm, step for step, on ``(value, index)`` pairs compared by value only.
``tests/test_openvino.py`` checks it against torch on arrays full of ties.
"""

from __future__ import annotations

import numpy as np

__all__ = ["descending_order"]

#: libstdc++'s ``_S_threshold``: runs this short are left to the final insertion sort.
THRESHOLD = 16


def descending_order(values: np.ndarray) -> np.ndarray:
    """Indices of ``values`` (1-D, no NaN) from largest to smallest, ties as torch orders them."""
    n = len(values)
    if n <= THRESHOLD or len(np.unique(values)) == n:
        # No tie, or only the final insertion sort runs (which is stable): any stable sort.
        return np.argsort(-values, kind="stable")
    return np.asarray(_Introsort(values.tolist()).order(), dtype=np.int64)


class _Introsort:
    """libstdc++'s ``std::sort`` with ``comp(a, b) = a > b`` on a list of (value, index)."""

    def __init__(self, values: list[float]) -> None:
        self.a = [(v, i) for i, v in enumerate(values)]

    @staticmethod
    def comp(x: tuple[float, int], y: tuple[float, int]) -> bool:
        return x[0] > y[0]

    def order(self) -> list[int]:
        n = len(self.a)
        self._introsort(0, n, 2 * (n.bit_length() - 1))
        self._insertion_sort(0, THRESHOLD)
        for i in range(THRESHOLD, n):
            self._linear_insert(i)
        return [i for _, i in self.a]

    def _introsort(self, first: int, last: int, depth: int) -> None:
        while last - first > THRESHOLD:
            if depth == 0:
                self._heap_sort(first, last)
                return
            depth -= 1
            self._median_to_first(first, first + 1, first + (last - first) // 2, last - 1)
            cut = self._partition(first + 1, last, first)
            self._introsort(cut, last, depth)
            last = cut

    def _median_to_first(self, result: int, x: int, y: int, z: int) -> None:
        a, comp = self.a, self.comp
        if comp(a[x], a[y]):
            median = y if comp(a[y], a[z]) else z if comp(a[x], a[z]) else x
        else:
            median = x if comp(a[x], a[z]) else z if comp(a[y], a[z]) else y
        a[result], a[median] = a[median], a[result]

    def _partition(self, first: int, last: int, pivot: int) -> int:
        a, comp = self.a, self.comp
        while True:
            while comp(a[first], a[pivot]):
                first += 1
            last -= 1
            while comp(a[pivot], a[last]):
                last -= 1
            if not first < last:
                return first
            a[first], a[last] = a[last], a[first]
            first += 1

    def _heap_sort(self, first: int, last: int) -> None:
        a = self.a
        length = last - first
        for parent in range((length - 2) // 2, -1, -1):
            self._adjust_heap(first, parent, length, a[first + parent])
        while last - first > 1:
            last -= 1
            value, a[last] = a[last], a[first]
            self._adjust_heap(first, 0, last - first, value)

    def _adjust_heap(self, first: int, hole: int, length: int, value) -> None:
        a, comp = self.a, self.comp
        top = child = hole
        while child < (length - 1) // 2:
            child = 2 * (child + 1)
            if comp(a[first + child], a[first + child - 1]):
                child -= 1
            a[first + hole] = a[first + child]
            hole = child
        if length % 2 == 0 and child == (length - 2) // 2:
            child = 2 * (child + 1)
            a[first + hole] = a[first + child - 1]
            hole = child - 1
        parent = (hole - 1) // 2
        while hole > top and comp(a[first + parent], value):
            a[first + hole] = a[first + parent]
            hole = parent
            parent = (hole - 1) // 2
        a[first + hole] = value

    def _linear_insert(self, last: int) -> None:
        a, comp = self.a, self.comp
        value = a[last]
        while comp(value, a[last - 1]):
            a[last] = a[last - 1]
            last -= 1
        a[last] = value

    def _insertion_sort(self, first: int, last: int) -> None:
        a, comp = self.a, self.comp
        for i in range(first + 1, last):
            if comp(a[i], a[first]):
                a[first + 1 : i + 1], a[first] = a[first:i], a[i]
            else:
                self._linear_insert(i)
