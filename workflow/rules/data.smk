# Raw CMD-format files (synthesized, downloaded, or linked in place from data.path: one layout),
# training statistics, shards: one set per suite that an experiment reads (data.suite, and the
# suites a classifier tells apart).

if DATA["source"] == "synthetic":

    rule synthesize_maps:
        output:
            maps=raw_maps("{suite}"),
            params=raw_params("{suite}"),
        log:
            f"logs/{{suite}}_{SET}/synthesize_maps.log",
        benchmark:
            f"logs/benchmarks/{{suite}}_{SET}/synthesize_maps.tsv"
        conda:
            "../../envs/analysis.yaml"
        params:
            set=SET,
            fields=DATA["fields"],
            n_sims=DATA["n_sims"],
            map_size=DATA["map_size"],
            box_size=DATA["box_size"],
            seed=lambda wildcards: cmd.suite_seed(
                config["seed"], wildcards.suite, DATA["suite"]
            ),
        script:
            "../scripts/synthesize_maps.py"

elif DATA["source"] == "local":

    localrules:
        link_cmd,

    rule link_cmd:
        input:
            lambda wildcards: os.path.join(DATA["path"], wildcards.filename),
        output:
            f"data/raw/cmd/{{suite}}_{SET}/{{filename}}",
        log:
            f"logs/{{suite}}_{SET}/link_cmd/{{filename}}.log",
        wildcard_constraints:
            filename="|".join(
                re.escape(os.path.basename(f)) for s in SUITES for f in raw_files(s)
            ),
        conda:
            "../../envs/analysis.yaml"
        params:
            n_sims=DATA["n_sims"],
            map_size=DATA["map_size"],
        script:
            "../scripts/link_cmd.py"

else:

    rule download_cmd:
        output:
            f"data/raw/cmd/{{suite}}_{SET}/{{filename}}",
        log:
            f"logs/{{suite}}_{SET}/download_cmd/{{filename}}.log",
        benchmark:
            f"logs/benchmarks/{{suite}}_{SET}/download_cmd/{{filename}}.tsv"
        wildcard_constraints:
            filename="|".join(
                re.escape(os.path.basename(f)) for s in SUITES for f in raw_files(s)
            ),
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
        maps=raw_maps("{suite}"),
        params=raw_params("{suite}"),
    output:
        f"data/shards/{{suite}}_{SET}/stats.json",
    log:
        f"logs/{{suite}}_{SET}/compute_stats.log",
    benchmark:
        f"logs/benchmarks/{{suite}}_{SET}/compute_stats.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        set=SET,
        fields=DATA["fields"],
        n_sims=DATA["n_sims"],
        splits=canonical(DATA["splits"]),
        seed=config["seed"],
        log_floor=DATA["log_floor"],
        floor_non_positive=DATA["floor_non_positive"],
        map_size=DATA["map_size"],
    script:
        "../scripts/compute_stats.py"


rule format_shards:
    input:
        maps=raw_maps("{suite}"),
        params=raw_params("{suite}"),
        stats=f"data/shards/{{suite}}_{SET}/stats.json",
    output:
        f"data/shards/{{suite}}_{SET}/{{split}}/{{shard}}.h5",
    log:
        f"logs/{{suite}}_{SET}/format_shards/{{split}}_{{shard}}.log",
    benchmark:
        f"logs/benchmarks/{{suite}}_{SET}/format_shards/{{split}}_{{shard}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        set=SET,
        maps_per_shard=DATA["maps_per_shard"],
    script:
        "../scripts/format_shards.py"
