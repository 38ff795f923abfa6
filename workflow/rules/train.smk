# Training: one job per experiment, on a GPU node when the experiment asks for GPUs (several
# GPUs: torchrun, one process each). Checkpoints live in checkpoints/{experiment}/, outside the
# declared outputs: a killed or preempted job resumes from them when the rule runs again, and
# they are removed once the model is written.


rule train:
    input:
        train=experiment_shards("train"),
        val=experiment_shards("val"),
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
        checkpoints="checkpoints/{experiment}",
    script:
        "../scripts/train.py"
