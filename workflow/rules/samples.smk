# Generated maps as products: a sample set of an experiment's trained generator, in HDF5 and
# in the CMD layout (a folder that data.path of another config can point at).


rule sample:
    input:
        model="results/{experiment}/model.pt",
    output:
        h5="results/{experiment}/samples/{sample}.h5",
        cmd=directory("results/{experiment}/samples/{sample}"),
    log:
        "logs/{experiment}/sample_{sample}.log",
    benchmark:
        "logs/benchmarks/{experiment}/sample_{sample}.tsv"
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
        "../scripts/sample.py"
