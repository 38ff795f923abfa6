# Figures flagged for the report, and the summary page (config, versions, metrics).


localrules:
    plot_example_maps,
    plot_channel_maps,
    plot_moment_maps,
    plot_training_curves,
    plot_predictions,
    plot_profiles,
    plot_residual_maps,
    plot_tsne,
    summary,


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


rule plot_training_curves:
    input:
        "results/{experiment}/train_log.csv",
    output:
        report(
            "results/{experiment}/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "figure": "training curves"},
        ),
    log:
        "logs/{experiment}/plot_training_curves.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        loss_label=loss_label,
    script:
        "../scripts/plot_training_curves.py"


rule plot_predictions:
    input:
        "results/{experiment}/predictions.h5",
    output:
        report(
            "results/{experiment}/figures/predictions.png",
            caption="../report/predictions.rst",
            category="Inference",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "figure": "predicted vs true"},
        ),
    log:
        "logs/{experiment}/plot_predictions.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/plot_predictions.py"


rule plot_profiles:
    input:
        "results/{experiment}/predictions.h5",
    output:
        report(
            "results/{experiment}/figures/profiles.png",
            caption="../report/profiles.rst",
            category="Inference",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "figure": "true vs predicted profiles",
            },
        ),
    log:
        "logs/{experiment}/plot_profiles.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/plot_profiles.py"


rule plot_residual_maps:
    input:
        "results/{experiment}/predictions.h5",
    output:
        report(
            "results/{experiment}/figures/residual_maps.png",
            caption="../report/residual_maps.rst",
            category="Inference",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "figure": "residual maps"},
        ),
    log:
        "logs/{experiment}/plot_residual_maps.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/plot_residual_maps.py"


rule plot_tsne:
    input:
        tsne="results/{experiment}/tsne.parquet",
        clusters="results/{experiment}/clusters.json",
    output:
        report(
            "results/{experiment}/figures/tsne.png",
            caption="../report/tsne.rst",
            category="Embeddings",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "figure": "t-SNE"},
        ),
    log:
        "logs/{experiment}/plot_tsne.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        colour_by=tsne_colours,
    script:
        "../scripts/plot_tsne.py"


rule summary:
    input:
        metrics=expand("results/{experiment}/metrics.json", experiment=EXPERIMENTS),
        clusters=expand("results/{experiment}/clusters.json", experiment=EXPERIMENTS),
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
        experiments=list(EXPERIMENTS),
        config=config,
    script:
        "../scripts/summary.py"
