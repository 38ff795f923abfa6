# Embeddings of the test maps or cubes, their t-SNE map and clustering; and at scale, one
# embedding job per shard of every split with the chunked analysis of all of them.


rule embed:
    input:
        model="results/{experiment}/model.pt",
        shards=experiment_shards("test"),
    output:
        "results/{experiment}/embeddings.h5",
    log:
        "logs/{experiment}/embed.log",
    benchmark:
        "logs/benchmarks/{experiment}/embed.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: experiment_threads
    resources:
        gpu=inference_gpus,
        mem_mb=experiment_mem_mb,
        runtime=experiment_runtime,
    params:
        settings=experiment_settings,
        split="test",
    script:
        "../scripts/embed.py"


# One job per shard: hundreds of maps each, so a cluster spreads the embedding of 10^5 maps
# over GPU jobs (grouped by the profile) instead of one long one.
rule embed_shard:
    input:
        model="results/{experiment}/model.pt",
        shards=experiment_shard,
    output:
        "results/{experiment}/embeddings/{split}/{shard}.h5",
    log:
        "logs/{experiment}/embed/{split}_{shard}.log",
    benchmark:
        "logs/benchmarks/{experiment}/embed/{split}_{shard}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: experiment_threads
    resources:
        gpu=inference_gpus,
        mem_mb=experiment_mem_mb,
        runtime=experiment_runtime,
    params:
        settings=experiment_settings,
        split="{split}",
    script:
        "../scripts/embed.py"


# PCA, t-SNE and clusters of the embeddings of every map of analysis.splits, read in chunks.
rule analyse_embeddings:
    input:
        embedding_shards,
    output:
        summary="results/{experiment}/analysis/analysis.json",
        table="results/{experiment}/analysis/tsne.parquet",
        figure=report(
            "results/{experiment}/analysis/figures/tsne.png",
            caption="../report/embedding_analysis.rst",
            category="Embeddings",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "figure": "t-SNE of all maps"},
        ),
    log:
        "logs/{experiment}/analyse_embeddings.log",
    benchmark:
        "logs/benchmarks/{experiment}/analyse_embeddings.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 2
    params:
        analysis=config["analysis"],
        colour_by=descriptive_params,
        seed=config["seed"],
    script:
        "../scripts/analyse_embeddings.py"


rule tsne:
    input:
        "results/{experiment}/embeddings.h5",
    output:
        "results/{experiment}/tsne.parquet",
    log:
        "logs/{experiment}/tsne.log",
    benchmark:
        "logs/benchmarks/{experiment}/tsne.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 2
    params:
        pca_components=config["analysis"]["pca_components"],
        perplexity=config["analysis"]["perplexity"],
        seed=config["seed"],
    script:
        "../scripts/tsne.py"


rule cluster:
    input:
        "results/{experiment}/embeddings.h5",
    output:
        "results/{experiment}/clusters.json",
    log:
        "logs/{experiment}/cluster.log",
    benchmark:
        "logs/benchmarks/{experiment}/cluster.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        pca_components=config["analysis"]["pca_components"],
        n_clusters=config["analysis"]["n_clusters"],
        silhouette_sample=config["analysis"]["silhouette_sample"],
        knn_neighbors=config["analysis"]["knn_neighbors"],
        knn_param=knn_param,
        seed=config["seed"],
    script:
        "../scripts/cluster.py"
