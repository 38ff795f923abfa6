"""astroflow: deep learning on astrophysical fields and cubes, wired by a Snakemake workflow."""

__version__ = "0.1.0"
