"""The classifier architectures by the name an experiment's ``arch`` gives."""

from __future__ import annotations

from torch import nn

from astroflow.models.classifiers import CircularClassifier, Penguin, Racoon


def build_classifier(
    arch: str, in_channels: int, map_size: int, layer_param: int, dropout: float, n_classes: int
) -> nn.Module:
    """``racoon`` and ``penguin`` (widths from ``layer_param``) or ``cnn2d`` (the moment
    network's circular trunk, ``layer_param`` its first width) with a classification head."""
    if arch == "racoon":
        return Racoon(in_channels, map_size, layer_param, dropout, n_classes)
    if arch == "penguin":
        return Penguin(in_channels, map_size, layer_param, dropout, n_classes)
    if arch == "cnn2d":
        return CircularClassifier(in_channels, map_size, layer_param, dropout, n_classes)
    raise ValueError(f"unknown classifier architecture {arch!r}; use racoon, penguin or cnn2d")
