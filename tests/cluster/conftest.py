"""A real single-node SLURM for the cluster tests: started once, always stopped at the end."""

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def slurm():
    """Start the local SLURM (installing it if needed); stop it even when a test fails."""
    if shutil.which("apt-get") is None and shutil.which("sbatch") is None:
        pytest.fail("the cluster tests need Debian's SLURM packages (or apt-get to install them)")
    up = subprocess.run(["bash", str(HERE / "slurm-up.sh")], capture_output=True, text=True)
    if up.returncode != 0:
        pytest.fail(f"slurm-up.sh failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}")
    try:
        yield
    finally:
        subprocess.run(["bash", str(HERE / "slurm-down.sh")], capture_output=True, text=True)
