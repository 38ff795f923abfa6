"""Snakemake entry point: fetch one CMD file (resumable, validated) into the raw layout."""

from pathlib import Path

from astroflow.maps.cmd import MAPS_PER_SIM
from astroflow.maps.download import (
    check_remote_npy,
    cmd_url,
    download_file,
    npy_validator,
    params_validator,
)
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    dest = Path(snakemake.output[0])
    n_sims = snakemake.params.n_sims
    size = snakemake.params.map_size
    settings = snakemake.params.settings
    url = cmd_url(snakemake.params.base_url, dest.name)
    if dest.suffix == ".npy":
        shape = (MAPS_PER_SIM * n_sims, size, size)
        keys = (
            f"expected from data.n_sims: {n_sims} (x {MAPS_PER_SIM} maps) and "
            f"data.map_size: {size}; set them to the file's shape"
        )
        check_remote_npy(url, shape, "<f4", keys, timeout=settings["timeout_s"])
        validate = npy_validator(shape, "<f4", keys)
    else:
        validate = params_validator(n_sims)
    download_file(
        url,
        dest,
        validate=validate,
        retries=settings["retries"],
        backoff=settings["backoff_s"],
        timeout=settings["timeout_s"],
    )
