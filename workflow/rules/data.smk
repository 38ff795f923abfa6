# Raw CMD-format files (synthesized or downloaded: one layout), training statistics, shards.

if DATA["source"] == "synthetic":

    rule synthesize_maps:
        output:
            maps=list(RAW_MAPS.values()),
            params=RAW_PARAMS,
        log:
            f"logs/{DATASET}/synthesize_maps.log",
        benchmark:
            f"logs/benchmarks/{DATASET}/synthesize_maps.tsv"
        conda:
            "../../envs/analysis.yaml"
        params:
            suite=DATA["suite"],
            set=DATA["set"],
            fields=DATA["fields"],
            n_sims=DATA["n_sims"],
            map_size=DATA["map_size"],
            box_size=DATA["box_size"],
            seed=config["seed"],
        script:
            "../scripts/synthesize_maps.py"

else:

    rule download_cmd:
        output:
            f"{RAW_DIR}/{{filename}}",
        log:
            f"logs/{DATASET}/download_cmd/{{filename}}.log",
        benchmark:
            f"logs/benchmarks/{DATASET}/download_cmd/{{filename}}.tsv"
        wildcard_constraints:
            filename="|".join(re.escape(os.path.basename(f)) for f in RAW_FILES),
        conda:
            "../../envs/analysis.yaml"
        params:
            base_url=DATA["base_url"],
            n_sims=DATA["n_sims"],
            map_size=DATA["map_size"],
            settings=canonical(DATA["download"]),
        script:
            "../scripts/download_cmd.py"


rule compute_stats:
    input:
        maps=list(RAW_MAPS.values()),
        params=RAW_PARAMS,
    output:
        f"{SHARD_DIR}/stats.json",
    log:
        f"logs/{DATASET}/compute_stats.log",
    benchmark:
        f"logs/benchmarks/{DATASET}/compute_stats.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        suite=DATA["suite"],
        set=DATA["set"],
        fields=DATA["fields"],
        n_sims=DATA["n_sims"],
        splits=canonical(DATA["splits"]),
        seed=config["seed"],
        log_floor=DATA["log_floor"],
    script:
        "../scripts/compute_stats.py"


rule format_shards:
    input:
        maps=list(RAW_MAPS.values()),
        params=RAW_PARAMS,
        stats=f"{SHARD_DIR}/stats.json",
    output:
        "data/shards/{dataset}/{split}/{shard}.h5",
    log:
        "logs/{dataset}/format_shards/{split}_{shard}.log",
    benchmark:
        "logs/benchmarks/{dataset}/format_shards/{split}_{shard}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        suite=DATA["suite"],
        set=DATA["set"],
        maps_per_shard=DATA["maps_per_shard"],
    script:
        "../scripts/format_shards.py"
