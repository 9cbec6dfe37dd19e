"""Printing lists and items as tables or JSON (``-o json``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

__all__ = ["add_output_option", "ago", "print_json", "print_table"]


def add_output_option(parser: argparse.ArgumentParser) -> None:
    """Add ``-o/--output {table,json}``."""
    parser.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="output format"
    )


def print_json(value: object) -> None:
    """Pretty JSON on stdout."""
    json.dump(value, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain aligned table; an empty list prints a one-line note instead."""
    if not rows:
        print("(none)")
        return
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def ago(timestamp: float) -> str:
    """``3s``, ``5m``, ``2h``, ``4d`` since a Unix timestamp."""
    seconds = max(0, int(time.time() - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
