# Inference on the test split: posterior mean and standard deviation per map, and metrics.


rule infer:
    input:
        model="results/{experiment}/model.pt",
        shards=shard_files("test"),
    output:
        predictions="results/{experiment}/predictions.h5",
        metrics="results/{experiment}/metrics.json",
    log:
        "logs/{experiment}/infer.log",
    benchmark:
        "logs/benchmarks/{experiment}/infer.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: experiment_threads
    resources:
        gpu=experiment_gpus,
        mem_mb=experiment_mem_mb,
        runtime=experiment_runtime,
    script:
        "../scripts/infer.py"
