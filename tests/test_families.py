"""The family registry: descriptors without torch, every setting documented with a default,
figures drawn from products the family makes, and the dependency direction (inference and
embeddings never load training code; the engine names no family and no data package)."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from shard_factory import write_splits

from astroflow.families import FAMILIES, get_family
from astroflow.families.base import DATA_KINDS
from astroflow.train import train_experiment

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "src" / "astroflow" / "engine"


def test_descriptors_and_the_config_check_import_nothing_heavy():
    """Every cluster job re-parses the workflow, which checks the whole config: torch, astropy
    and scipy's FFT would each add a large part of a second to every job."""
    code = (
        "import sys; from astroflow.config import SCHEMA, load_config_file, validate_config; "
        f"config = validate_config(load_config_file({str(ROOT / 'config' / 'config.yaml')!r}), "
        "SCHEMA); assert config['cubes'] and config['volumes']; "
        "heavy = [m for m in ('torch', 'astropy', 'scipy.fft') if m in sys.modules]; "
        "assert not heavy, f'imported {heavy}'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(
        KeyError, match="unknown model family 'resnet'; available: classifier, cnn2d"
    ):
        get_family("resnet")


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_family_declares_what_the_workflow_needs(name):
    family = FAMILIES[name]
    assert family.name == name and family.data in DATA_KINDS and family.description
    for key, schema in family.settings.items():
        assert "default" in schema and "description" in schema, key
    made = {"train_log.csv", "tsne.parquet", "clusters.json"}
    made |= {"predictions.h5", "metrics.json"} if family.predicts else set()
    made |= {"model.pt"} | {f"{e.name}.json" for e in family.evaluations}
    for figure in family.figures:
        assert set(figure.inputs) <= made, figure.name
        assert figure.caption and figure.category
    assert set(family.runtime_settings) <= set(family.settings)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_config_readme_documents_every_family_setting(name):
    readme = (ROOT / "config" / "README.md").read_text()
    assert f"`{name}`" in readme
    for key in FAMILIES[name].settings:
        assert f"`{key}`" in readme, key


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement of ``path`` names (module level or nested)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_engine_imports_no_training_entry_no_family_and_no_data_package():
    forbidden = ("astroflow.train", "astroflow.families", "astroflow.maps", "astroflow.cubes")
    for path in sorted(ENGINE.glob("*.py")):
        for module in imported_modules(path):
            assert not module.startswith(forbidden), f"{path.name} imports {module}"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    shards = write_splits(root / "shards", {"train": 4, "val": 2, "test": 2})
    settings = {
        "model": "cnn2d",
        "fields": ["Mgas"],
        "params": ["Omega_m"],
        "epochs": 1,
        "batch_size": 8,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "hidden": 4,
        "dropout": 0.0,
        "seed": 0,
    }
    path = root / "model.pt"
    train_experiment(settings, shards["train"], shards["val"], path, root / "log.csv", root / "tb")
    return root, path, shards["test"]


@pytest.mark.usefixtures("one_torch_thread")
def test_inference_and_embeddings_load_no_training_code(model):
    root, path, test_shards = model
    code = f"""
import json, sys
from astroflow.embed import embed
from astroflow.infer import predict
shards = {json.dumps([str(p) for p in test_shards])}
predict({str(path)!r}, shards, {str(root / "p.h5")!r}, {str(root / "m.json")!r}, threads=1)
embed({str(path)!r}, shards, {str(root / "e.h5")!r}, threads=1)
loaded = sorted(m for m in sys.modules if m.startswith("astroflow"))
print(json.dumps(loaded))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    )
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert "astroflow.families.cnn2d.products" in loaded  # the products did run here
    training = [
        m
        for m in loaded
        if m in ("astroflow.train", "astroflow.engine.loop", "astroflow.engine.family")
        or m.endswith(".training")
    ]
    assert training == []


def test_a_sweep_member_makes_what_the_sweep_compares():
    family = get_family("classifier")
    full = family.products("clf_strength_2", {}, {"sweep_member": False})
    member = family.products("clf_strength_0", {}, {"sweep_member": True})
    assert member == [
        "results/clf_strength_0/figures/training_curves.png",
        "results/clf_strength_0/metrics.json",
    ]
    assert "results/clf_strength_2/clusters.json" in full and len(full) == 7
