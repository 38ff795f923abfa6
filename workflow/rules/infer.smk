# Inference on the test split and its metrics, written by the experiment's family, and the
# predictions of real FITS cubes for the families that make them.


rule infer:
    input:
        model="results/{experiment}/model.pt",
        shards=experiment_shards("test"),
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
        gpu=inference_gpus,
        mem_mb=experiment_mem_mb,
        runtime=experiment_runtime,
    params:
        settings=experiment_settings,
    script:
        "../scripts/infer.py"


rule predict_fits:
    input:
        model="results/{experiment}/model.pt",
        data=real_cube,
    output:
        density="results/{experiment}/real/{name}_density.fits",
        velocity="results/{experiment}/real/{name}_velocity.fits",
    log:
        "logs/{experiment}/predict_fits/{name}.log",
    benchmark:
        "logs/benchmarks/{experiment}/predict_fits/{name}.tsv"
    wildcard_constraints:
        name=REAL_NAME,
    conda:
        "../../envs/torch.yaml"
    threads: experiment_threads
    resources:
        gpu=inference_gpus,
        mem_mb=experiment_mem_mb,
        runtime=experiment_runtime,
    params:
        model=lambda wildcards: EXPERIMENTS[wildcards.experiment]["model"],
        velocity_offset_kms=CUBES["velocity_offset_kms"],
        center_on_emission=CUBES["center_on_emission"],
    script:
        "../scripts/predict_real.py"
