# Embeddings of the test maps or cubes, their t-SNE map and clustering.


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
    script:
        "../scripts/embed.py"


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
