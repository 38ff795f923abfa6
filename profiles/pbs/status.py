#!/usr/bin/env python3
"""Print the state of one PBS/Torque job for Snakemake: exactly `running`, `success` or `failed`.

Called by Snakemake's cluster-generic executor as ``status.py <jobid>`` (the id submit.py
printed), from the workflow's working directory, once per job and polling round.

Where the answer comes from, first hit wins:

1. ``qstat -f <jobid>``: states Q/H/W/T/S/R/E/B... mean running. A finished job (``C`` on
   Torque, ``F``/``X`` on PBS Pro) is decided by its ``exit_status``/``Exit_status`` when qstat
   reports one.
2. The exit code the job wrote to ``.snakemake/pbs_status/<jobid>`` (added by submit.py): the
   only source when the server has already forgotten the job (Torque's keep_completed, SLURM's
   MinJobAge) or shows ``C`` without an exit status (the SLURM torque wrapper).
3. ``qstat -x -f <jobid>`` (PBS Pro keeps finished jobs there; on Torque -x means XML, parsed
   the same way).
4. SLURM, for qsub/qstat provided by slurm-wlm-torque: ``sacct`` (COMPLETED = success, any
   other final state = failed), then ``scontrol show job``.
5. Still nothing: if qstat saw the job finish, `running` until one of the sources has caught up
   (network file systems may show the status file late); if no source knows the job at all,
   `failed` (a job killed before writing its status, e.g. by qdel or the wall time).

Only the state word goes to stdout; explanations go to stderr (Snakemake shows them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

STATUS_DIR = Path(".snakemake/pbs_status")
FINISHED = {"C", "F", "X"}  # Torque completed; PBS Pro finished / subjob finished
# SLURM states that are not final (the job may still run or be requeued).
SLURM_ACTIVE = {
    "PENDING", "RUNNING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED",
    "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "STOPPED", "PREEMPTED",
}  # fmt: skip


def run(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess | None:
    """Run a query command; None when the command is missing or hangs."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def parse_qstat(text: str) -> tuple[str | None, int | None]:
    """(job_state, exit status) from `qstat -f` text or Torque's `qstat -x` XML."""
    state = re.search(r"job_state\s*(?:=\s*|>)\s*([A-Z])", text)
    code = re.search(r"exit_status\s*(?:=\s*|>)\s*(-?\d+)", text, re.IGNORECASE)
    return (state.group(1) if state else None, int(code.group(1)) if code else None)


def from_qstat(jobid: str, *extra: str) -> tuple[str | None, int | None]:
    proc = run(["qstat", *extra, "-f", jobid])
    if proc is None or proc.returncode != 0:
        return None, None  # unknown job (Torque/wrapper: exit 153; PBS Pro: finished job)
    return parse_qstat(proc.stdout)


def from_status_file(jobid: str) -> str | None:
    path = STATUS_DIR / jobid
    try:
        code = path.read_text().strip()
    except OSError:
        return None
    return "success" if code == "0" else "failed"


def from_slurm(jobid: str) -> str | None:
    """Final state from SLURM accounting, or scontrol while the job is still in memory."""
    if not jobid.split(".")[0].isdigit():
        return None
    slurm_id = jobid.split(".")[0]
    proc = run(["sacct", "-X", "-n", "-P", "-j", slurm_id, "-o", "State"])
    state = proc.stdout.split("\n")[0].strip() if proc and proc.returncode == 0 else ""
    if not state:
        proc = run(["scontrol", "-o", "show", "job", slurm_id])
        match = re.search(r"JobState=(\S+)", proc.stdout) if proc and proc.returncode == 0 else None
        state = match.group(1) if match else ""
    if not state:
        return None
    state = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    if state == "COMPLETED":
        return "success"
    return "running" if state in SLURM_ACTIVE else "failed"


def status(jobid: str) -> tuple[str, str]:
    """(state word, explanation)."""
    state, code = from_qstat(jobid)
    if state and state not in FINISHED:
        return "running", f"qstat job_state={state}"
    if state and code is not None:
        return ("success" if code == 0 else "failed"), f"qstat exit_status={code}"
    seen_finished = state is not None
    for attempt in range(2):
        answer = from_status_file(jobid)
        if answer:
            return answer, f"exit code in {STATUS_DIR / jobid}"
        xstate, xcode = from_qstat(jobid, "-x")
        if xstate and xstate not in FINISHED:
            return "running", f"qstat -x job_state={xstate}"
        if xstate and xcode is not None:
            return ("success" if xcode == 0 else "failed"), f"qstat -x exit_status={xcode}"
        answer = from_slurm(jobid)
        if answer:
            return answer, "SLURM accounting (sacct/scontrol)"
        if attempt == 0:
            time.sleep(1)  # one more look: the status file may be in flight on NFS
    if seen_finished:
        return "running", "qstat says finished, waiting for its exit code to show up"
    return "failed", f"job {jobid} unknown to qstat, sacct/scontrol and {STATUS_DIR}"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: status.py <jobid>", file=sys.stderr)
        return 2
    word, why = status(argv[1].strip())
    if word == "failed":
        print(f"status.py: job {argv[1]}: {why}", file=sys.stderr)
    print(word)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
