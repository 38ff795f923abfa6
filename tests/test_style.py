"""Code hygiene as part of the test suite: ruff, snakefmt and conda envs in step with pyproject."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PYTHON_DIRS = ["src", "tests", "workflow", "benchmarks"]
# conda-forge names of the PyPI distributions astroflow depends on.
CONDA_NAMES = {"torch": "pytorch", "matplotlib": "matplotlib-base", "opentsne": "opentsne"}
# Needed only to run the workflow itself (not inside a rule's conda environment).
WORKFLOW_ONLY = {"snakemake"}
TORCH_ONLY = {"torch", "tensorboard"}


def tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install the dev extra: pip install -e '.[dev]'")
    return found


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_ruff_lint_and_format():
    lint = run(tool("ruff"), "check", *PYTHON_DIRS)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = run(tool("ruff"), "format", "--check", *PYTHON_DIRS)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_snakefmt():
    result = run(tool("snakefmt"), "--check", "Snakefile", "workflow/rules")
    assert result.returncode == 0, result.stdout + result.stderr


def distribution_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {re.split(r"[<>=!~\[ ]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}


def conda_packages(env: str) -> set[str]:
    spec = yaml.safe_load((ROOT / "envs" / env).read_text())
    return {str(dep).split()[0].lower() for dep in spec["dependencies"] if isinstance(dep, str)}


@pytest.mark.parametrize(
    ("env", "excluded"), [("torch.yaml", set()), ("analysis.yaml", TORCH_ONLY)]
)
def test_conda_envs_follow_pyproject(env, excluded):
    wanted = {CONDA_NAMES.get(n, n) for n in distribution_names() - WORKFLOW_ONLY - excluded}
    have = conda_packages(env) - {"python"}
    assert wanted - have == set(), f"envs/{env} lacks {sorted(wanted - have)}"
    assert have - wanted == set(), f"envs/{env} lists {sorted(have - wanted)} not in pyproject"


def test_every_rule_names_a_conda_env_and_a_log():
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = path.read_text()
        for block in re.split(r"\n\s*rule ", text)[1:]:
            name = block.split(":", 1)[0]
            assert "log:" in block, f"rule {name} in {path.name} has no log"
            assert "conda:" in block, f"rule {name} in {path.name} names no conda env"


def rule_blocks() -> dict[str, str]:
    """Every rule's text, by name."""
    blocks = {}
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"\n\s*rule ", path.read_text())[1:]:
            blocks[block.split(":", 1)[0]] = block
    return blocks


def local_rules() -> set[str]:
    names = set()
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        for listed in re.findall(r"localrules:\n((?:\s+\w+,\n)+)", path.read_text()):
            names |= {name.strip(" ,") for name in listed.split()}
    return names


def test_every_cluster_rule_has_a_benchmark_beside_its_log():
    """The resources page pairs a job's benchmark with its log (astroflow.resources)."""
    local = local_rules()
    assert {"plot_figure", "summary"} <= local
    for name, block in rule_blocks().items():
        log = re.search(r"log:\s*\n\s*f?\"([^\"]+)\"", block)
        benchmark = re.search(r"benchmark:\s*\n\s*f?\"([^\"]+)\"", block)
        if name in local:
            continue
        assert benchmark, f"rule {name} runs on the cluster but has no benchmark"
        expected = "logs/benchmarks/" + log.group(1).removeprefix("logs/").removesuffix(".log")
        assert benchmark.group(1) == expected + ".tsv", name


def test_an_install_of_the_package_alone_can_write_the_report():
    # snakemake --report highlights the rules' code with pygments, which only the reports
    # extra of snakemake brings (it came through pytest before).
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (snakemake,) = [d for d in project["dependencies"] if re.match(r"snakemake\b", d)]
    assert "[reports]" in snakemake.replace(" ", "")
