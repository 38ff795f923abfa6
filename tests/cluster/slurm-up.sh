#!/usr/bin/env bash
# Start a real single-node SLURM on this machine for the cluster tests and profile checks.
#
# Provides: munge, MariaDB + slurmdbd (so `sacct` works), slurmctld and `slurmd -N localhost`;
# partitions `cpu` (default) and `gpu` on the same node; two fake GPUs as GRES (gres/gpu,
# backed by /dev/null and /dev/zero, so a GPU job sees CUDA_VISIBLE_DEVICES but no device);
# accounting of gres/gpu per job; an accounting cluster and an account with root in it.
#
# Debian 12, root, no systemd: packages are installed with apt-get when missing and the daemons
# are started directly. Idempotent: a second run checks, (re)starts only what is down or
# reconfigured, resumes a drained node, and finishes in a few seconds.
#
# Environment (all optional):
#   ASTROFLOW_SLURM_ACCOUNT   account to create and put root in        (default: astroflow)
#   ASTROFLOW_SLURM_CLUSTER   ClusterName in slurm.conf and the database (default: astroflow)
#   ASTROFLOW_SLURM_USERS     extra users to add to the account          (default: $SUDO_USER)
#   ASTROFLOW_SLURM_TIMEOUT   seconds to wait for each daemon/check      (default: 60)
#
# Exit status 0 means: the node is idle, `srun hostname` and `srun -p gpu --gpus=1` work.
# On failure it names the step that failed and prints the tail of the relevant log.
set -euo pipefail

ACCOUNT="${ASTROFLOW_SLURM_ACCOUNT:-astroflow}"
CLUSTER="${ASTROFLOW_SLURM_CLUSTER:-astroflow}"
EXTRA_USERS="${ASTROFLOW_SLURM_USERS:-${SUDO_USER:-}}"
TIMEOUT="${ASTROFLOW_SLURM_TIMEOUT:-60}"

ETC=/etc/slurm
LOGDIR=/var/log/slurm
SPOOL_CTLD=/var/spool/slurmctld
SPOOL_D=/var/spool/slurmd
RUNDIR=/run/slurm
DB_NAME=slurm_acct_db
DB_USER=slurm
# Local-only database reachable through the unix socket; the password only has to match the
# one in slurmdbd.conf (mode 600).
DB_PASS=astroflow-local-slurmdbd

T0=${EPOCHREALTIME/./} # microseconds
say() {
    local dt=$(((${EPOCHREALTIME/./} - T0) / 100000))
    printf '[slurm-up %3d.%ds] %s\n' $((dt / 10)) $((dt % 10)) "$*"
}
die() {
    # die "what failed" [logfile]: name the failed step, show the log it wrote, exit 1.
    echo "slurm-up: FAILED: $1" >&2
    if [[ -n "${2:-}" && -r "$2" ]]; then
        echo "---- last lines of $2 ----" >&2
        tail -n 25 "$2" >&2
    fi
    exit 1
}
# wait_for SECONDS DESCRIPTION CMD...: poll CMD every 0.2 s until it succeeds or time runs out.
wait_for() {
    local limit=$1 what=$2
    shift 2
    local end=$(($(date +%s) + limit))
    until "$@" >/dev/null 2>&1; do
        (($(date +%s) < end)) || return 1
        sleep 0.2
    done
}
# alive PIDFILE: the daemon whose pid is recorded in PIDFILE is running.
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts system daemons)"

# ---------------------------------------------------------------------------------------------
# 1. Packages (only when a binary is missing). One apt-get call: about 25 s on these machines.
# ---------------------------------------------------------------------------------------------
need=()
for pair in slurmctld:slurmctld slurmd:slurmd sinfo:slurm-client munged:munge \
    slurmdbd:slurmdbd mariadbd:mariadb-server qsub:slurm-wlm-torque; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if ((${#need[@]})); then
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Skip the man-db index rebuild triggered by the new man pages (~11 s of the install here);
    # the marker file is put back afterwards, so the next regular apt run reindexes.
    mandb_marker=/var/lib/man-db/auto-update
    if [[ -e $mandb_marker ]]; then
        mv "$mandb_marker" "$mandb_marker.slurm-up"
        trap 'mv -f "$mandb_marker.slurm-up" "$mandb_marker" 2>/dev/null || true' EXIT
    fi
    apt_install() {
        apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-unsafe-io \
            "${need[@]}" >>/tmp/slurm-up-apt.log 2>&1
    }
    : >/tmp/slurm-up-apt.log
    # The package lists may be missing (fresh container) or stale: update once and retry.
    if ! apt_install; then
        apt-get update -qq >>/tmp/slurm-up-apt.log 2>&1 || die "apt-get update" /tmp/slurm-up-apt.log
        apt_install || die "apt-get install ${need[*]}" /tmp/slurm-up-apt.log
    fi
    if [[ -e $mandb_marker.slurm-up ]]; then
        mv -f "$mandb_marker.slurm-up" "$mandb_marker"
        trap - EXIT
    fi
    # "policy-rc.d denied execution of start" in that log is expected: we start daemons below.
fi
getent passwd slurm >/dev/null || die "user 'slurm' missing after installing the slurm packages"

# ---------------------------------------------------------------------------------------------
# 2. munge (authentication between all SLURM commands and daemons)
# ---------------------------------------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating munge key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
if ! alive /run/munge/munged.pid; then
    say "starting munged"
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    runuser -u munge -- /usr/sbin/munged || die "starting munged" /var/log/munge/munged.log
fi
wait_for "$TIMEOUT" munge bash -c 'munge -n | unmunge' || die "munge credential round trip" /var/log/munge/munged.log

# ---------------------------------------------------------------------------------------------
# 3. Configuration files. Rewritten only when their content changes; a change restarts the
#    daemons that read them (slurmd does not pick up gres/node changes on reconfigure).
# ---------------------------------------------------------------------------------------------
install -d -o slurm -g slurm -m 0755 "$LOGDIR" "$SPOOL_CTLD" "$SPOOL_D" "$RUNDIR"
install -d -m 0755 "$ETC"

# Node hardware as slurmd sees it; RealMemory ~90% so the node is never rejected for memory.
hw=$(slurmd -C 2>/dev/null | head -n 1) || die "slurmd -C (hardware detection)"
get() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
CPUS=$(get CPUs)
BOARDS=$(get Boards)
SOCKETS=$(get SocketsPerBoard)
CORES=$(get CoresPerSocket)
THREADS=$(get ThreadsPerCore)
MEM=$(get RealMemory)
[[ -n $CPUS && -n $MEM ]] || die "could not parse 'slurmd -C' output: $hw"
MEM=$((MEM * 9 / 10))

changed_ctld=0 # slurm.conf/gres.conf changed -> restart slurmctld and slurmd
changed_dbd=0  # slurmdbd.conf changed -> restart slurmdbd
# put_file PATH MODE OWNER FLAGVAR: write stdin to PATH if different, set FLAGVAR=1 if so.
put_file() {
    local path=$1 mode=$2 owner=$3 flag=$4 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
        chmod "$mode" "$path" && chown "$owner" "$path" # slurmdbd refuses a readable conf
    else
        install -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$tmp" "$path"
        rm -f "$tmp"
        printf -v "$flag" 1
    fi
}

put_file "$ETC/slurm.conf" 0644 root:root changed_ctld <<EOF
# Written by astroflow tests/cluster/slurm-up.sh: one node, two partitions, two fake GPUs.
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
GresTypes=gpu
# Reject at submission a job that can never run here (e.g. threads > CPUs of the node) instead of
# leaving it PENDING (reason PartitionConfig) forever, which would hang a test.
EnforcePartLimits=ALL
# A node that was DOWN (e.g. slurmd stopped) returns to service when slurmd registers again.
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol/qstat for 10 min: status pollers that ask
# late (Snakemake's squeue mode needs >= 3x its first-check delay) still find them.
MinJobAge=600
# Seconds between SIGTERM and SIGKILL at the time limit / scancel (Slurm's default): the time a
# training job has to write its checkpoint.
KillWait=30
SlurmctldPidFile=$RUNDIR/slurmctld.pid
SlurmdPidFile=$RUNDIR/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
StateSaveLocation=$SPOOL_CTLD
SlurmdSpoolDir=$SPOOL_D
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
# Like production clusters: a job must run under an existing user/account association, so a
# wrong slurm_account in a profile is rejected at submission instead of silently accepted.
AccountingStorageEnforce=associations
# Keep the job comment in the database: the SLURM executor plugin writes rule_<rule>... there,
# so sacct --format=JobID,Comment%40,Partition,AllocTRES%45 maps jobs back to rules.
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS Boards=$BOARDS SocketsPerBoard=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS RealMemory=$MEM Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost Default=NO MaxTime=INFINITE State=UP
EOF

# One line per fake GPU: GRES without File= (Count=2) is dropped and drains the node.
put_file "$ETC/gres.conf" 0644 root:root changed_ctld <<EOF
AutoDetect=off
NodeName=localhost Name=gpu File=/dev/null
NodeName=localhost Name=gpu File=/dev/zero
EOF

put_file "$ETC/slurmdbd.conf" 0600 slurm:slurm changed_dbd <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=$RUNDIR/slurmdbd.pid
LogFile=$LOGDIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF

# ---------------------------------------------------------------------------------------------
# 4. MariaDB and the accounting database
# ---------------------------------------------------------------------------------------------
if ! mysqladmin ping >/dev/null 2>&1; then
    say "starting mariadb"
    /etc/init.d/mariadb start >/tmp/slurm-up-mariadb.log 2>&1 || die "starting mariadb (/etc/init.d/mariadb start)" /tmp/slurm-up-mariadb.log
fi
wait_for "$TIMEOUT" mariadb mysqladmin ping || die "mariadb does not answer mysqladmin ping" /tmp/slurm-up-mariadb.log
mysql -e "CREATE DATABASE IF NOT EXISTS $DB_NAME;
          CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
          ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
          GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';" || die "creating the accounting database and user in mariadb"

# ---------------------------------------------------------------------------------------------
# 5. slurmdbd, then the cluster, account and users in the accounting database
# ---------------------------------------------------------------------------------------------
stop_pid() { # stop_pid PIDFILE: SIGTERM the recorded daemon and wait until it is gone
    alive "$1" || return 0
    local pid
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}
if ((changed_dbd)) && alive $RUNDIR/slurmdbd.pid; then
    say "slurmdbd.conf changed: restarting slurmdbd"
    stop_pid $RUNDIR/slurmdbd.pid
fi
if ! alive $RUNDIR/slurmdbd.pid; then
    say "starting slurmdbd"
    /usr/sbin/slurmdbd || die "starting slurmdbd" $LOGDIR/slurmdbd.log
fi
wait_for "$TIMEOUT" slurmdbd sacctmgr -n show cluster || die "slurmdbd does not answer (sacctmgr show cluster)" $LOGDIR/slurmdbd.log

in_db() { [[ -n $(sacctmgr -n -P show "$@" 2>/dev/null) ]]; }
in_db cluster "$CLUSTER" format=cluster ||
    sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER"
in_db account "$ACCOUNT" format=account ||
    sacctmgr -i -Q add account "$ACCOUNT" Cluster="$CLUSTER" Description="astroflow tests" Organization=astroflow >/dev/null ||
    die "sacctmgr add account $ACCOUNT"
for user in root $EXTRA_USERS; do
    in_db association where user="$user" account="$ACCOUNT" cluster="$CLUSTER" format=user ||
        sacctmgr -i -Q add user "$user" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" Cluster="$CLUSTER" >/dev/null ||
        die "sacctmgr add user $user to account $ACCOUNT"
done

# ---------------------------------------------------------------------------------------------
# 6. slurmctld and slurmd
# ---------------------------------------------------------------------------------------------
if ((changed_ctld)); then
    if alive $RUNDIR/slurmd.pid || alive $RUNDIR/slurmctld.pid; then
        say "slurm.conf/gres.conf changed: restarting slurmctld and slurmd"
    fi
    stop_pid $RUNDIR/slurmd.pid
    stop_pid $RUNDIR/slurmctld.pid
fi
if ! alive $RUNDIR/slurmctld.pid; then
    say "starting slurmctld"
    /usr/sbin/slurmctld || die "starting slurmctld" $LOGDIR/slurmctld.log
fi
wait_for "$TIMEOUT" slurmctld scontrol ping || die "slurmctld does not answer (scontrol ping)" $LOGDIR/slurmctld.log
if ! alive $RUNDIR/slurmd.pid; then
    say "starting slurmd"
    /usr/sbin/slurmd -N localhost || die "starting slurmd -N localhost" $LOGDIR/slurmd.log
fi

# A node left drained/down by an earlier bad configuration stays so until resumed.
node_state() { sinfo -h -N -n localhost -o %T 2>/dev/null | head -n 1; }
node_idle() { [[ $(node_state) =~ ^(idle|mixed|allocated)$ ]]; }
end=$(($(date +%s) + TIMEOUT))
until node_idle; do
    state=$(node_state)
    if [[ $state =~ drain|down|fail ]] && alive $RUNDIR/slurmd.pid; then
        say "node is '$state': resuming it"
        scontrol update nodename=localhost state=resume >/dev/null 2>&1 ||
            scontrol update nodename=localhost state=idle >/dev/null 2>&1 || true
    fi
    (($(date +%s) < end)) || die "node localhost not idle after ${TIMEOUT}s (state '$state', reason: $(sinfo -h -R -n localhost -o %E))" $LOGDIR/slurmd.log
    sleep 0.3
done

# ---------------------------------------------------------------------------------------------
# 7. Proof that jobs run: a CPU step and a GPU step (the GPU job must see CUDA_VISIBLE_DEVICES).
# ---------------------------------------------------------------------------------------------
out=$(timeout "$TIMEOUT" srun -p cpu -t 1 hostname 2>&1) || die "srun hostname: $out" $LOGDIR/slurmctld.log
out=$(timeout "$TIMEOUT" srun -p gpu --gpus=1 -t 1 env 2>&1) || die "srun -p gpu --gpus=1 env: $out" $LOGDIR/slurmd.log
grep -q '^CUDA_VISIBLE_DEVICES=' <<<"$out" || die "GPU job did not get CUDA_VISIBLE_DEVICES (gres/gpu not allocated)" $LOGDIR/slurmd.log
wait_for "$TIMEOUT" sacct sacct -n -X || die "sacct does not answer" $LOGDIR/slurmdbd.log

say "ready: $(sinfo -h -o '%P %a %D %T %G' | tr '\n' ';') account=$ACCOUNT cluster=$CLUSTER"
