"""Snakemake entry point: density and velocity profile cubes of one real FITS PPV cube."""

from astroflow.cubes.predict import predict_fits
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0]):
    predict_fits(
        snakemake.input.model,
        snakemake.input.cube,
        snakemake.output.density,
        snakemake.output.velocity,
        velocity_offset_kms=snakemake.params.velocity_offset_kms,
        threads=snakemake.threads,
    )
