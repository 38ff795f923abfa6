# Inference on the test split (cnn2d: posterior mean and std per map; cnn3d: profiles per
# column, with the flat-profile baseline), its metrics, and cnn3d profiles of real FITS cubes.


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
    script:
        "../scripts/infer.py"


rule predict_fits:
    input:
        model="results/{experiment}/model.pt",
        cube=f"{REAL_DIR}/{{name}}.fits",
    output:
        density="results/{experiment}/real/{name}_density.fits",
        velocity="results/{experiment}/real/{name}_velocity.fits",
    log:
        "logs/{experiment}/predict_fits/{name}.log",
    benchmark:
        "logs/benchmarks/{experiment}/predict_fits/{name}.tsv"
    wildcard_constraints:
        name=r"[^/]+",
    conda:
        "../../envs/torch.yaml"
    threads: experiment_threads
    resources:
        gpu=inference_gpus,
        mem_mb=experiment_mem_mb,
        runtime=experiment_runtime,
    params:
        velocity_offset_kms=CUBES["velocity_offset_kms"],
    script:
        "../scripts/predict_fits.py"
