"""Snakemake entry point: train one experiment on the train/val shards (torchrun for gpus > 1).

Runtime options (restart, checkpoint cadence, precision, loader workers, compile) come from the
experiment's config entry rather than from params, so changing them triggers no retraining.
"""

from astroflow.engine.options import RunOptions
from astroflow.runlog import log_to_file
from astroflow.train import train_job

with log_to_file(snakemake.log[0], job=snakemake):
    train_job(
        snakemake.params.settings,
        snakemake.input.train,
        snakemake.input.val,
        snakemake.output.model,
        snakemake.output.log_csv,
        snakemake.output.tensorboard,
        RunOptions.from_experiment(
            snakemake.config["experiments"][snakemake.wildcards.experiment],
            checkpoint_dir=snakemake.params.checkpoints,
            threads=snakemake.threads,
        ),
        gpus=snakemake.resources.gpu,
        log_path=snakemake.log[0],
    )
