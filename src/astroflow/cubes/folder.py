"""The real cubes of a folder: every FITS file, whatever the case of its suffix.

Read while the workflow is parsed (pure pathlib, no astropy): each file becomes a target
named by its stem, so ``ngc1333.FITS`` is predicted like ``ngc1333.fits`` instead of being
skipped without a word.
"""

from __future__ import annotations

import os
from pathlib import Path

FITS_SUFFIXES: tuple[str, ...] = (".fits", ".fit", ".fts")


def real_cubes(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``{name: path}`` of the FITS files in ``folder`` (none if it does not exist), sorted.

    Two files of one stem (``a.fits`` and ``a.FITS``) would write the same products: a
    ValueError names both.
    """
    root = Path(folder)
    if not root.is_dir():
        return {}
    cubes: dict[str, str] = {}
    for path in sorted(root.iterdir()):
        if path.suffix.lower() not in FITS_SUFFIXES or not path.is_file():
            continue
        if path.stem in cubes:
            raise ValueError(
                f"{cubes[path.stem]} and {path} would write the same products "
                f"(results/<experiment>/real/{path.stem}_*.fits); rename or remove one"
            )
        cubes[path.stem] = str(path)
    return cubes
