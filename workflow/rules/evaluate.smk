# Family evaluations: JSON products beyond metrics.json (an emulator's validation against the
# noise floor of its data, say), each declared by the experiment's family.


rule evaluate:
    input:
        unpack(evaluation_inputs),
    output:
        "results/{experiment}/{evaluation}.json",
    log:
        "logs/{experiment}/evaluate_{evaluation}.log",
    benchmark:
        "logs/benchmarks/{experiment}/evaluate_{evaluation}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: experiment_threads
    resources:
        gpu=inference_gpus,
        mem_mb=experiment_mem_mb,
        runtime=experiment_runtime,
    params:
        model=lambda wildcards: EXPERIMENTS[wildcards.experiment]["model"],
        settings=product_settings,
    script:
        "../scripts/evaluate.py"
