#!/usr/bin/env bash
# Stop the local SLURM started by tests/cluster/slurm-up.sh.
#
# Cancels every job first and waits for them to leave the queue (stopping slurmd does not kill
# running jobs), then stops slurmd, slurmctld, slurmdbd, MariaDB and munge, each by the pid it
# recorded. Idempotent: anything already down is skipped and the script still exits 0.
# Packages, configuration, the accounting database and spool state are kept, so the next
# slurm-up.sh takes seconds.
#
# Environment: ASTROFLOW_SLURM_TIMEOUT  seconds to wait for jobs / each daemon (default: 45, above KillWait=30)
set -uo pipefail

TIMEOUT="${ASTROFLOW_SLURM_TIMEOUT:-45}"
RUNDIR=/run/slurm

say() { printf '[slurm-down] %s\n' "$*"; }
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid NAME PIDFILE: SIGTERM the recorded daemon, wait up to TIMEOUT s, then SIGKILL.
stop_pid() {
    local name=$1 pidfile=$2 pid
    alive "$pidfile" || return 0
    pid=$(cat "$pidfile")
    say "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq $((TIMEOUT * 10))); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
        sleep 0.1
    done
    say "$name did not stop after ${TIMEOUT}s: sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

# 1. Jobs: only possible while slurmctld answers.
if command -v scontrol >/dev/null && alive $RUNDIR/slurmctld.pid && timeout 10 scontrol ping >/dev/null 2>&1; then
    jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
    if [[ -n ${jobs// /} ]]; then
        say "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        end=$(($(date +%s) + TIMEOUT))
        while [[ -n $(squeue -h -o %A 2>/dev/null) ]] && (($(date +%s) < end)); do sleep 0.3; done
        left=$(squeue -h -o '%A %T' 2>/dev/null | tr '\n' ' ')
        [[ -z $left ]] || say "warning: jobs still listed after ${TIMEOUT}s: $left"
    fi
fi

# 2. Daemons, in the reverse order of slurm-up.sh.
stop_pid slurmd $RUNDIR/slurmd.pid
stop_pid slurmctld $RUNDIR/slurmctld.pid
stop_pid slurmdbd $RUNDIR/slurmdbd.pid
if command -v mysqladmin >/dev/null && mysqladmin ping >/dev/null 2>&1; then
    say "stopping mariadb"
    /etc/init.d/mariadb stop >/dev/null 2>&1 || say "warning: /etc/init.d/mariadb stop failed"
fi
stop_pid munged /run/munge/munged.pid
say "down"
exit 0
