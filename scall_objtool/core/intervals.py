"""Containment queries over many intervals at bounded cost.

Which function holds an offset is asked once per site or table entry; a
walk back over the functions from the offset costs O(functions) per query
when one of them is huge (every zero-size label at its start lies between
the query and it).  :class:`Innermost` answers a sequence of queries in
non-decreasing order with one sweep: O((intervals + queries) log intervals)
in all, whatever the sizes and nesting.
"""
from __future__ import annotations

import heapq


class Innermost:
    """Of intervals ``[start, end)``, the one containing a point with the
    greatest start, ties broken by the least ``order``.

    ``items`` are ``(start, end, order, payload)``; ``order`` values must be
    comparable with each other, payloads are never compared.  Queries in
    non-decreasing order cost O(log n) each, amortised; a query below the
    previous one restarts the sweep (still correct, only slower)."""

    def __init__(self, items: list[tuple[int, int, object, object]], presorted: bool = False):
        """``presorted``: the items are already in (start, order) order."""
        self._items = items if presorted else sorted(items, key=lambda t: (t[0], t[2]))
        self._restart()

    def _restart(self) -> None:
        self._open: list[tuple] = []        # (-start, order, position): started, maybe ended
        self._next = 0                      # the first item not yet started
        self._last: int | None = None

    def query(self, point: int):
        """The payload of the interval holding ``point``, or None."""
        if self._last is not None and point < self._last:
            self._restart()
        self._last = point
        items, open_, k = self._items, self._open, self._next
        while k < len(items) and items[k][0] <= point:
            start, end, order, _payload = items[k]
            if end > point:
                heapq.heappush(open_, (-start, order, k))
            k += 1
        self._next = k
        # the points only grow: an interval that has ended stays ended
        while open_ and items[open_[0][2]][1] <= point:
            heapq.heappop(open_)
        return items[open_[0][2]][3] if open_ else None
