"""Snakemake entry point: validate one CMD file of data.path and link it into the raw layout."""

from astroflow.maps.local import link_cmd_file
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    link_cmd_file(
        snakemake.input[0],
        snakemake.output[0],
        snakemake.params.n_sims,
        snakemake.params.map_size,
    )
