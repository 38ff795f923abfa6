"""Snakemake entry point: write synthetic maps and parameters in the CMD file layout."""

from pathlib import Path

from astroflow.maps.synthetic import write_synthetic_cmd
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    p = snakemake.params
    write_synthetic_cmd(
        Path(snakemake.output.params).parent,
        snakemake.wildcards.suite,
        p.set,
        p.fields,
        p.n_sims,
        p.map_size,
        p.box_size,
        p.seed,
    )
