# Training: one job per experiment, on a GPU node when the experiment asks for GPUs.


rule train:
    input:
        train=shard_files("train"),
        val=shard_files("val"),
    output:
        model="results/{experiment}/model.pt",
        log_csv="results/{experiment}/train_log.csv",
        tensorboard=directory("results/{experiment}/tensorboard"),
    log:
        "logs/{experiment}/train.log",
    benchmark:
        "logs/benchmarks/{experiment}/train.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: experiment_threads
    resources:
        gpu=experiment_gpus,
        mem_mb=experiment_mem_mb,
        runtime=experiment_runtime,
    params:
        settings=experiment_settings,
    script:
        "../scripts/train.py"
