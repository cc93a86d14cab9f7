#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost, for the tests: jobs/testbed/README.md.
#   slurm.sh start DIR    writes DIR/slurm.conf, starts munged, (mariadbd, slurmdbd,) slurmctld and slurmd (no systemd),
#                         waits until the node is idle, then prints on stdout the environment the clients need,
#                         SLURM_CONF=DIR/slurm.conf, and TESTBED_SLURM_ACCOUNTING=1 or 0 (whether sacct works)
#   slurm.sh stop DIR     cancels the jobs, stops every process it started from DIR (and their job steps)
#   slurm.sh status DIR   prints sinfo and squeue of the cluster; exits 1 if it does not answer
# Needs root and Debian's munge, slurmctld, slurmd, slurm-client (jobs/testbed/install.sh). With slurmdbd and
# mariadb-server installed too, accounting is on (sacct works, and so do submitit's job states), unless
# TESTBED_SLURM_ACCOUNTING=0. Exit code 77: this machine cannot run it (the reason is on stderr).
# Everything lives in DIR: config, state, logs, pid files, the munge key and socket, the accounting database.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=jobs/testbed/lib.sh
. "$HERE/lib.sh"

usage() { die "usage: $0 start|stop|status DIR"; }
[ $# -eq 2 ] || usage
START_TIMEOUT=${TESTBED_SLURM_TIMEOUT:-60}
ACCOUNTING=${TESTBED_SLURM_ACCOUNTING:-auto}

preflight() {
    [ "$(id -u)" = 0 ] || cannot "slurm: not root (slurmd and munged need root here)"
    local b
    for b in munged slurmctld slurmd sinfo sbatch squeue scancel; do
        command -v "$b" >/dev/null || cannot "slurm: $b not found (install it as root: bash jobs/testbed/install.sh)"
    done
    id munge >/dev/null 2>&1 || cannot "slurm: no user munge (the munge package creates it)"
    command -v runuser >/dev/null || cannot "slurm: runuser not found (util-linux)"
    command -v python3 >/dev/null || cannot "slurm: python3 not found (it picks the free ports)"
    case "$ACCOUNTING" in
        0 | 1) ;;
        auto)
            ACCOUNTING=1
            for b in slurmdbd mariadbd mariadb-install-db mariadb-admin sacctmgr; do
                command -v "$b" >/dev/null || { ACCOUNTING=0; say "slurm: no $b: no accounting (sacct will fail)"; break; }
            done ;;
        *) die "TESTBED_SLURM_ACCOUNTING must be 0, 1 or auto, not '$ACCOUNTING'" ;;
    esac
}

# The pid in pid file $1, if that process is one that DIR started.
our_pid() {
    local pid
    pid=$(cat "$1" 2>/dev/null || true)
    [ -n "$pid" ] && grep -qzxF "BNN_TESTBED=$DIR" "/proc/$pid/environ" 2>/dev/null && echo "$pid"
    return 0
}

CMD=$1
[ "$CMD" = start ] && preflight # before touching DIR: when not root, say so (exit 77)
DIR=$(abs_dir "$2")
check_path_length "$DIR" 40 # DIR/spool/localhost_<job>.<step>, DIR/munge/munge.sock, DIR/mysql.sock
export SLURM_CONF=$DIR/slurm.conf

stop() {
    local i jobs pids
    if [ -n "$(our_pid "$DIR/slurmctld.pid")" ] && [ -f "$SLURM_CONF" ]; then
        # Jobs first, so that their processes end with their steps.
        timeout 5 scancel --quiet --full --user=root 2>/dev/null || true
        for ((i = 0; i < 25; i++)); do
            jobs=$(timeout 3 squeue -h -o %i 2>/dev/null) || break
            [ -z "$jobs" ] && break
            sleep 0.2
        done
    fi
    # slurmd and slurmctld before what they talk to (slurmdbd, mariadbd, munged), then all the rest that DIR started.
    pids="$(our_pid "$DIR/slurmd.pid") $(our_pid "$DIR/slurmctld.pid")"
    # shellcheck disable=SC2086
    terminate 10 $pids
    kill_marked "$DIR" 10
}

node_state() { timeout 5 sinfo -h -n localhost -o %t 2>/dev/null || true; }

write_config() {
    local cpus mem_mb ctld_port slurmd_port
    cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) # the CPUs this process may use
    # Less than the machine has, so that slurmd never drains the node for "Low RealMemory".
    mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
    # Free ports, all different: an earlier run's daemons, or the machine's own slurm, keep theirs.
    local -a ports=()
    while [ ${#ports[@]} -lt 4 ]; do
        local p
        p=$(free_port)
        [[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
    done
    ctld_port=${ports[0]} slurmd_port=${ports[1]} DBD_PORT=${ports[2]} DB_PORT=${ports[3]}
    cat >"$SLURM_CONF" <<EOF
# Written by jobs/testbed/slurm.sh: a one-node cluster on localhost, daemons as root, no cgroups.
ClusterName=testbed
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.sock
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
InactiveLimit=0
KillWait=5
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    if [ "$ACCOUNTING" = 0 ]; then
        echo "AccountingStorageType=accounting_storage/none" >>"$SLURM_CONF"
        return
    fi
    cat >>"$SLURM_CONF" <<EOF
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# With slurmdbd this names the munge socket that slurmctld, sacct and sacctmgr reach it through (else the default one).
AccountingStoragePass=$DIR/munge/munge.sock
EOF
    # slurmdbd reads slurmdbd.conf beside SLURM_CONF; it must be the SlurmUser's, and private.
    (
        umask 077
        cat >"$DIR/slurmdbd.conf" <<EOF
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.sock
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=root
StorageLoc=slurm_acct_db
PidFile=$DIR/slurmdbd.pid
LogFile=$DIR/slurmdbd.log
EOF
    )
}

start_munge() {
    # A munged of our own (own key, own socket in DIR): the machine's munge, if any, is left alone.
    local m=$DIR/munge i
    mkdir -p "$m"
    chown munge:munge "$m"
    chmod 0755 "$m"
    (umask 077 && head -c 1024 /dev/urandom >"$m/munge.key")
    chown munge:munge "$m/munge.key"
    chmod 0400 "$m/munge.key"
    runuser -u munge -- env BNN_TESTBED="$DIR" munged --force --num-threads=4 \
        --socket="$m/munge.sock" --key-file="$m/munge.key" --pid-file="$m/munged.pid" \
        --log-file="$m/munged.log" --seed-file="$m/munged.seed" </dev/null >>"$DIR/daemons.out" 2>&1 \
        || die "slurm: munged did not start: $(tail -n 5 "$m/munged.log" 2>/dev/null)"
    for ((i = 0; i < 50; i++)); do
        [ -S "$m/munge.sock" ] && return 0
        sleep 0.1
    done
    die "slurm: munged socket $m/munge.sock did not appear: $(tail -n 5 "$m/munged.log" 2>/dev/null)"
}

start_accounting() {
    # A MariaDB server of our own in DIR/mysql (no passwords: it listens on 127.0.0.1 only), then slurmdbd.
    local t0=$SECONDS
    mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root --auth-root-authentication-method=normal \
        --skip-test-db </dev/null >"$DIR/mariadb-install.log" 2>&1 \
        || die "slurm: mariadb-install-db failed: $(tail -n 5 "$DIR/mariadb-install.log")"
    env BNN_TESTBED="$DIR" mariadbd --no-defaults --datadir="$DIR/mysql" --socket="$DIR/mysql.sock" --port="$DB_PORT" \
        --bind-address=127.0.0.1 --user=root --pid-file="$DIR/mariadbd.pid" --log-error="$DIR/mariadbd.log" \
        --skip-grant-tables --skip-log-bin --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 \
        --innodb-flush-log-at-trx-commit=0 </dev/null >>"$DIR/daemons.out" 2>&1 &
    until mariadb-admin --no-defaults -h 127.0.0.1 -P "$DB_PORT" -u root ping >/dev/null 2>&1; do
        ((SECONDS - t0 < START_TIMEOUT)) || die "slurm: mariadbd did not answer in ${START_TIMEOUT}s: $(tail -n 5 "$DIR/mariadbd.log")"
        sleep 0.1
    done
    env BNN_TESTBED="$DIR" slurmdbd </dev/null >>"$DIR/daemons.out" 2>&1 \
        || die "slurm: slurmdbd did not start: $(tail -n 5 "$DIR/slurmdbd.log" 2>/dev/null)"
    until timeout 5 sacctmgr -n show cluster >/dev/null 2>&1; do
        ((SECONDS - t0 < START_TIMEOUT)) || die "slurm: slurmdbd did not answer in ${START_TIMEOUT}s: $(tail -n 5 "$DIR/slurmdbd.log")"
        sleep 0.2
    done
    say "slurm: accounting (mariadbd, slurmdbd) up after $((SECONDS - t0))s"
}

failed_start() {
    say "slurm: $1; logs in $DIR:"
    tail -n 15 "$DIR"/*.log "$DIR/daemons.out" >&2 2>/dev/null || true
    stop
    exit 1
}

start() {
    # Whatever an earlier (maybe crashed) run left in DIR: its daemons, its jobs, its state.
    stop
    rm -rf "${DIR:?}/state" "${DIR:?}/spool" "${DIR:?}/munge" "${DIR:?}/mysql" "$DIR"/*.pid "$DIR"/*.log "$DIR"/*.conf \
        "$DIR/daemons.out"
    mkdir -p "$DIR/state" "$DIR/spool"
    local t0=$SECONDS state=""
    write_config
    start_munge
    if [ "$ACCOUNTING" = 1 ]; then start_accounting; fi
    # -i: ignore any saved state. Both fork into the background and write their pid files.
    env BNN_TESTBED="$DIR" slurmctld -i </dev/null >>"$DIR/daemons.out" 2>&1 || failed_start "slurmctld did not start"
    env BNN_TESTBED="$DIR" slurmd -N localhost </dev/null >>"$DIR/daemons.out" 2>&1 || failed_start "slurmd did not start"
    while ((SECONDS - t0 < START_TIMEOUT)); do
        state=$(node_state)
        case "$state" in
            idle | mix | alloc) break ;;
            drain* | down*)
                # A node left down by a slow first registration: resume it once it answers.
                timeout 5 scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 0.3
    done
    case "$state" in
        idle | mix | alloc) ;;
        *) failed_start "node not idle after ${START_TIMEOUT}s (sinfo state: '${state:-no answer}')" ;;
    esac
    if [ "$ACCOUNTING" = 1 ]; then
        # slurmctld registers the cluster with slurmdbd as it starts; sacct answers for it once it has.
        until timeout 5 sacct -n -X >/dev/null 2>&1 && [ -n "$(timeout 5 sacctmgr -n show cluster testbed format=cluster)" ]; do
            ((SECONDS - t0 < START_TIMEOUT)) || failed_start "cluster not registered with slurmdbd after ${START_TIMEOUT}s"
            sleep 0.2
        done
    fi
    say "slurm: node localhost $state after $((SECONDS - t0))s (accounting: $ACCOUNTING); config $SLURM_CONF"
    echo "SLURM_CONF=$SLURM_CONF"
    echo "TESTBED_SLURM_ACCOUNTING=$ACCOUNTING"
}

status() {
    timeout 10 sinfo && timeout 10 squeue || exit 1
}

case "$CMD" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
esac
