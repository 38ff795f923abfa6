"""Snakemake entry point: requested against used resources of every benchmarked job."""

from astroflow.resources import collect_usage, write_page, write_tsv
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    jobs = collect_usage(snakemake.params.logs)
    write_tsv(jobs, snakemake.output.table)
    write_page(jobs, snakemake.output.page)
