"""The model families, by the name an experiment's ``model`` gives.

A family is one package under :mod:`astroflow.families` plus its line below. Its descriptor
(:class:`~astroflow.families.base.Family`) imports no torch, so the config check, the rules
and the report read every family while the workflow is parsed; the torch side is imported
only by the jobs that train or apply a model of that family.
"""

from __future__ import annotations

from astroflow.families.base import Family
from astroflow.families.classifier import CLASSIFIER
from astroflow.families.cnn2d import CNN2D
from astroflow.families.cnn3d import CNN3D
from astroflow.families.gan2d import GAN2D
from astroflow.families.srgan3d import SRGAN3D
from astroflow.families.vicreg import VICREG

FAMILIES: dict[str, Family] = {
    family.name: family for family in (CNN2D, CNN3D, CLASSIFIER, VICREG, SRGAN3D, GAN2D)
}


def get_family(name: str) -> Family:
    """The family registered as ``name``; an unknown name lists the known ones."""
    if name not in FAMILIES:
        raise KeyError(f"unknown model family {name!r}; available: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]
