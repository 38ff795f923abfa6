#!/usr/bin/env python3
"""Submit one Snakemake job script with `qsub` (PBS/Torque or PBS Pro) and print the job id.

Called by Snakemake's cluster-generic executor as ``submit.py <jobscript>``. The job's rule,
threads and resources are read from the ``# properties = {...}`` line Snakemake writes into
every job script, so rules that do not declare ``gpu`` or ``runtime`` need no special casing.

What goes into the single ``qsub`` call:

* queue (``-q``): ``gpu`` when the job asks for ``gpu >= 1`` GPUs, otherwise ``cpu``;
  names from ASTROFLOW_PBS_GPU_QUEUE / ASTROFLOW_PBS_CPU_QUEUE, or per rule from the resource
  ``pbs_queue``;
* CPUs, GPUs, memory and wall time in ONE ``-l`` (several ``-l`` options are not merged by every
  qsub: the SLURM torque wrapper keeps only the last), in one of two dialects:
  - ``torque`` (default): ``-l nodes=1:ppn=<threads>[:gpus=<n>],mem=<mb>mb,walltime=HH:MM:SS``
  - ``pbspro``:  ``-l select=1:ncpus=<threads>:mem=<mb>mb[:ngpus=<n>],walltime=HH:MM:SS``
  chosen by ASTROFLOW_PBS_DIALECT (wins) or the resource ``pbs_dialect`` (e.g. in the profile's
  default-resources);
* ``-N`` job name, ``-j oe -o logs/pbs/<rule>/<wildcards>.attempt<N>.log`` (one log per job),
  ``-V`` (the job inherits the submitting environment: PATH to the venv/conda env),
  ``-r y`` (rerunnable: the server may requeue it after a node failure or preemption),
  ``-A`` from ASTROFLOW_PBS_ACCOUNT or the resource ``pbs_account`` if set,
  and the words of the resource ``pbs_extra`` (e.g. ``"'-m a -M me@uni.edu'"``) verbatim.

The script actually submitted is a copy of Snakemake's job script that also records the job's
exit code in ``.snakemake/pbs_status/<jobid>`` (see status.py): many PBS servers forget finished
jobs at once and the SLURM torque wrapper's qstat shows ``C`` for success and failure alike.

Prints qsub's job id (e.g. ``1234.server``) on the first line; exits non-zero with qsub's
message on stderr if the submission fails.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

STATUS_DIR = Path(".snakemake/pbs_status")  # relative to the workflow's working directory
LOG_DIR = Path("logs/pbs")


def read_properties(jobscript: Path) -> dict:
    """The job properties Snakemake embeds in the job script (rule, threads, resources...)."""
    for line in jobscript.read_text().splitlines():
        if line.startswith("# properties = "):
            return json.loads(line[len("# properties = ") :])
    raise SystemExit(f"submit.py: no '# properties = ' line in job script {jobscript}")


def walltime(minutes: float) -> str:
    """Minutes -> HH:MM:SS, the format every PBS flavour accepts."""
    seconds = max(60, int(round(float(minutes) * 60)))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def safe(text: str, limit: int = 120) -> str:
    """Characters that survive qsub, the torque wrapper's shell and file systems."""
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", text)[:limit] or "job"


def resource_list(dialect: str, threads: int, gpus: int, mem_mb: int | None, runtime) -> str:
    """The single -l argument: CPUs, GPUs, memory (always with a unit) and wall time."""
    if dialect == "torque":
        chunk = f"nodes=1:ppn={threads}" + (f":gpus={gpus}" if gpus else "")
        items = [chunk] + ([f"mem={mem_mb}mb"] if mem_mb else [])
    elif dialect == "pbspro":
        chunk = f"select=1:ncpus={threads}" + (f":mem={mem_mb}mb" if mem_mb else "")
        items = [chunk + (f":ngpus={gpus}" if gpus else "")]
    else:
        raise SystemExit(f"submit.py: unknown PBS dialect {dialect!r} (use 'torque' or 'pbspro')")
    if runtime:
        items.append(f"walltime={walltime(runtime)}")
    return ",".join(items)


def wrapped_script(jobscript: Path, status_dir: Path) -> Path:
    """Copy of the job script that writes its exit code to status_dir/<jobid> at the end."""
    lines = jobscript.read_text().splitlines()
    header = [line for line in lines if line.startswith("#")]
    body = [line for line in lines if line.strip() and not line.startswith("#")]
    # Snakemake's command ends in `exit 0 || exit 1`: run it in a subshell to get past it.
    text = "\n".join(
        ["#!/bin/sh", *[h for h in header if not h.startswith("#!")], "(", *body, ")"]
        + [
            "rc=$?",
            "# Job id as qsub printed it: PBS_JOBID on PBS/Torque, SLURM_JOB_ID under the wrapper.",
            'id="${PBS_JOBID:-${SLURM_JOB_ID:-}}"',
            f'if [ -n "$id" ]; then mkdir -p {shlex.quote(str(status_dir))} && '
            f'echo "$rc" > {shlex.quote(str(status_dir))}/"$id"; fi',
            'exit "$rc"',
            "",
        ]
    )
    out = jobscript.with_name(jobscript.name + ".pbs.sh")
    out.write_text(text)
    out.chmod(0o755)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: submit.py <jobscript>", file=sys.stderr)
        return 2
    jobscript = Path(argv[1]).resolve()
    props = read_properties(jobscript)
    res = props.get("resources", {})
    text = jobscript.read_text()

    name = props.get("rule") or f"group_{props.get('groupid', 'job')}"
    threads = max(1, int(props.get("threads") or 1))
    gpus = int(res.get("gpu") or res.get("gpus") or 0)
    mem_mb = res.get("mem_mb")
    mem_mb = int(mem_mb) if isinstance(mem_mb, (int, float)) and mem_mb > 0 else None
    runtime = res.get("runtime") if isinstance(res.get("runtime"), (int, float)) else None
    dialect = os.environ.get("ASTROFLOW_PBS_DIALECT") or res.get("pbs_dialect") or "torque"
    if gpus:
        queue = res.get("pbs_queue") or os.environ.get("ASTROFLOW_PBS_GPU_QUEUE", "gpu")
    else:
        queue = res.get("pbs_queue") or os.environ.get("ASTROFLOW_PBS_CPU_QUEUE", "cpu")
    account = os.environ.get("ASTROFLOW_PBS_ACCOUNT") or res.get("pbs_account")

    wildcards = props.get("wildcards") or {}
    label = ",".join(f"{k}={v}" for k, v in wildcards.items()) or "all"
    attempt = re.search(r"--attempt (\d+)", text)
    log = LOG_DIR / safe(name) / f"{safe(label)}.attempt{attempt.group(1) if attempt else 1}.log"
    log = log.resolve()
    log.parent.mkdir(parents=True, exist_ok=True)

    cmd = ["qsub", "-N", safe(f"smk.{name}", 15), "-q", queue]
    cmd += ["-l", resource_list(dialect, threads, gpus, mem_mb, runtime)]
    cmd += ["-j", "oe", "-o", str(log), "-V", "-r", "y"]
    if account:
        cmd += ["-A", str(account)]
    if res.get("pbs_extra"):
        cmd += shlex.split(str(res["pbs_extra"]))
    cmd.append(str(wrapped_script(jobscript, STATUS_DIR.resolve())))

    proc = subprocess.run(cmd, capture_output=True, text=True)
    jobid = proc.stdout.strip().splitlines()[0].strip() if proc.stdout.strip() else ""
    # The torque wrapper prints its error on stdout and exits non-zero; real qsub uses stderr.
    if proc.returncode != 0 or not jobid:
        print(
            f"submit.py: qsub failed (exit {proc.returncode}): {shlex.join(cmd)}\n"
            f"{proc.stdout}{proc.stderr}",
            file=sys.stderr,
        )
        return proc.returncode or 1
    print(jobid)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
