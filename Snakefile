# astroflow: CMD-format maps and synthetic PPV cubes -> HDF5 shards -> CNNs -> inference ->
# embeddings -> t-SNE -> report.
# Run:  snakemake --cores all            (embedded synthetic default, no network)
#       snakemake --report results/report.html
import os
import sys

from snakemake.utils import min_version

min_version("9.0")

# The library lives in src/. Parsing imports it from there, and jobs (local, conda or cluster,
# which re-parse this file) inherit it through PYTHONPATH, so no install step is needed.
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
)


from astroflow.config import ConfigError, load_config_file

DEFAULT_CONFIG = os.path.join(workflow.basedir, "config", "config.yaml")
# Read strictly first: a YAML error names its file and line, a repeated key is refused.
try:
    for path in workflow.overwrite_configfiles or [DEFAULT_CONFIG]:
        load_config_file(path)
except ConfigError as error:
    raise WorkflowError(str(error)) from None


# A config file given with --configfile replaces the default instead of being merged into it.
if not workflow.overwrite_configfiles:

    configfile: DEFAULT_CONFIG


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/cubes.smk"
include: "workflow/rules/volumes.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/samples.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        all_products(),
