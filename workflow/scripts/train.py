"""Snakemake entry point: train one experiment on the train/val shards."""

from astroflow.runlog import log_to_file
from astroflow.train import train_experiment

with log_to_file(snakemake.log[0]):
    train_experiment(
        snakemake.params.settings,
        snakemake.input.train,
        snakemake.input.val,
        snakemake.output.model,
        snakemake.output.log_csv,
        snakemake.output.tensorboard,
        threads=snakemake.threads,
    )
