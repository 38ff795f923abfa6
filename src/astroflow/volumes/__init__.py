"""Paired 3D fields for super-resolution: low- and high-resolution volumes of one realization."""
