"""Plain-text tables whose columns fit their longest value (ids and labels of any length)."""
from __future__ import annotations


def columns(header: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> list[str]:
    """Header, a rule, then the rows; column ``i`` is right-aligned when ``i`` is in ``right``."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]


FORMATS = ("text", "markdown", "csv", "json", "latex")  # of `repro compare`
