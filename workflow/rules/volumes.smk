# Paired low/high-resolution volumes: one job per shard of synthetic pairs.


rule synthesize_volumes:
    output:
        "data/volumes/{volumeset}/{split}/{shard}.h5",
    log:
        "logs/volumes/{volumeset}/synthesize_volumes/{split}_{shard}.log",
    benchmark:
        "logs/benchmarks/volumes/{volumeset}/synthesize_volumes/{split}_{shard}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=volume_synthesis(),
        volumes_per_shard=VOLUMES["volumes_per_shard"],
        seed=config["seed"],
    script:
        "../scripts/synthesize_volumes.py"
