"""Snakemake entry point: fetch one CMD file (resumable, validated) into the raw layout."""

from pathlib import Path

from astroflow.maps.cmd import MAPS_PER_SIM
from astroflow.maps.download import cmd_url, download_file, npy_validator, params_validator
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0]):
    dest = Path(snakemake.output[0])
    n_sims = snakemake.params.n_sims
    size = snakemake.params.map_size
    if dest.suffix == ".npy":
        validate = npy_validator((MAPS_PER_SIM * n_sims, size, size), "<f4")
    else:
        validate = params_validator(n_sims)
    settings = snakemake.params.settings
    download_file(
        cmd_url(snakemake.params.base_url, dest.name),
        dest,
        validate=validate,
        retries=settings["retries"],
        backoff=settings["backoff_s"],
        timeout=settings["timeout_s"],
    )
