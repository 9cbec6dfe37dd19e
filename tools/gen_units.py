"""Write the service files under packaging/ from edge_runner/service/units.py.

Usage: ``python tools/gen_units.py [--check]``. With ``--check`` it writes nothing and exits 1
when a file under packaging/ differs from what the code renders (the test suite runs it so).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from edge_runner.service.units import packaged_units  # noqa: E402

PACKAGING = ROOT / "packaging"


def main(argv: list[str]) -> int:
    """Write (or with ``--check`` compare) every packaged unit; the exit code says if stale."""
    check = "--check" in argv
    stale = []
    for relative, text in packaged_units().items():
        path = PACKAGING / relative
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(relative)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote packaging/{relative}")
    if check and stale:
        names = ", ".join(str(p) for p in stale)
        print(f"stale under packaging/: {names}; run `python tools/gen_units.py`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
