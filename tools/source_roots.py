"""Put the repository's code folders on a virtualenv's import path (a .pth file in its
site-packages), so python, pytest and the tools import the same modules Lambda does:
`python -m tools.source_roots ROOT...` (the Makefile's SOURCE_ROOTS)."""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

PTH_NAME = "jobline-source-roots.pth"


def write_pth(roots: Sequence[str], site_packages: Path) -> Path:
    """Write the .pth file naming each root (absolute); return its path."""
    pth = site_packages / PTH_NAME
    pth.write_text("".join(f"{Path(root).resolve()}\n" for root in roots))
    return pth


def main(argv: Sequence[str] | None = None) -> int:
    roots = list(sys.argv[1:] if argv is None else argv)
    write_pth(roots, Path(sysconfig.get_paths()["purelib"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
