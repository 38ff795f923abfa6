# Figures flagged for the report, and the summary page (config, versions, metrics).


localrules:
    plot_example_maps,
    plot_channel_maps,
    plot_moment_maps,
    plot_figure,
    plot_sweep,
    summary,
    resources_page,


rule plot_example_maps:
    input:
        shard=f"{SHARD_DIR}/test/000.h5",
    output:
        report(
            "results/{dataset}/figures/example_maps.png",
            caption="../report/example_maps.rst",
            category="Data",
            labels={"dataset": "{dataset}", "figure": "example maps"},
        ),
    log:
        "logs/{dataset}/plot_example_maps.log",
    wildcard_constraints:
        dataset=DATASET,
    conda:
        "../../envs/analysis.yaml"
    params:
        fields=DATA["fields"],
    script:
        "../scripts/plot_example_maps.py"


rule plot_channel_maps:
    input:
        f"{CUBE_DIR}/test/000.h5",
    output:
        report(
            "results/{cubeset}/figures/channel_maps.png",
            caption="../report/channel_maps.rst",
            category="Data",
            labels={"dataset": "{cubeset}", "figure": "channel maps"},
        ),
    log:
        "logs/cubes/{cubeset}/plot_channel_maps.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/plot_channel_maps.py"


rule plot_moment_maps:
    input:
        f"{CUBE_DIR}/test/000.h5",
    output:
        report(
            "results/{cubeset}/figures/moment_maps.png",
            caption="../report/moment_maps.rst",
            category="Data",
            labels={"dataset": "{cubeset}", "figure": "moment maps"},
        ),
    log:
        "logs/cubes/{cubeset}/plot_moment_maps.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/plot_moment_maps.py"


# Every figure of an experiment: its family declares what it is drawn from, its caption and
# its report section (astroflow.families).
rule plot_figure:
    input:
        figure_inputs,
    output:
        report(
            "results/{experiment}/figures/{figure}.png",
            caption="../report/figure.rst",
            category=figure_category,
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "figure": "{figure}"},
        ),
    log:
        "logs/{experiment}/plot_{figure}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        caption=figure_caption,
        model=lambda wildcards: EXPERIMENTS[wildcards.experiment]["model"],
        colour_by=figure_colours,
    script:
        "../scripts/plot_figure.py"


# A sweep: the family's sweep metrics of every member against the swept value.
rule plot_sweep:
    input:
        sweep_metrics,
    output:
        table="results/{sweep}/sweep.json",
        figure=report(
            "results/{sweep}/figures/sweep.png",
            caption="../report/sweep.rst",
            category="Sweeps",
            labels={"sweep": "{sweep}", "figure": "metrics against the swept value"},
        ),
    log:
        "logs/sweeps/{sweep}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        sweep=lambda wildcards: SWEEPS[wildcards.sweep],
        family=lambda wildcards: sweep_family(wildcards).name,
    script:
        "../scripts/plot_sweep.py"


rule summary:
    input:
        metrics=expand("results/{experiment}/metrics.json", experiment=PREDICTING),
        clusters=expand("results/{experiment}/clusters.json", experiment=EMBEDDING),
    output:
        report(
            "results/summary.html",
            caption="../report/summary.rst",
            category="Summary",
            labels={"figure": "metrics, config and versions"},
        ),
    log:
        "logs/summary.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        config=config,
        predicting=PREDICTING,
        embedding=EMBEDDING,
    script:
        "../scripts/summary.py"


# What every benchmarked job asked for against what it used; built after everything else.
rule resources_page:
    input:
        all_products(include_resources=False),
    output:
        table="results/resources.tsv",
        page=report(
            "results/resources.html",
            caption="../report/resources.rst",
            category="Resources",
            labels={"figure": "requested and used resources per job"},
        ),
    log:
        "logs/resources_page.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        logs="logs",
    script:
        "../scripts/resources_page.py"
