# Synthetic prestellar cores: one job per cube shard, and a few cubes as FITS with a WCS
# (a second's work, so it runs on the submit host).


localrules:
    write_cube_examples,


rule synthesize_cubes:
    output:
        "data/cubes/{cubeset}/{split}/{shard}.h5",
    log:
        "logs/cubes/{cubeset}/synthesize_cubes/{split}_{shard}.log",
    benchmark:
        "logs/benchmarks/cubes/{cubeset}/synthesize_cubes/{split}_{shard}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        core=canonical(CUBES["core"]),
        cores_per_shard=CUBES["cores_per_shard"],
        seed=config["seed"],
    script:
        "../scripts/synthesize_cubes.py"


rule write_cube_examples:
    input:
        f"{CUBE_DIR}/test/000.h5",
    output:
        CUBE_EXAMPLES,
    log:
        f"logs/cubes/{CUBESET}/write_cube_examples.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        n_examples=CUBES["fits_examples"],
    script:
        "../scripts/write_cube_examples.py"
