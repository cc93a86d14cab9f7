# shellcheck shell=bash
# Shared helpers of slurm.sh and postgres.sh (sourced, not run).
# Every daemon a testbed script starts carries BNN_TESTBED=<its state folder> in its environment,
# so `stop` finds exactly the processes it started (and their children), whatever their pid files say.

# Debian puts the daemons (munged, slurmctld, slurmd, runuser) in sbin, which a root shell's PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# Exit code that tells the caller (tests/conftest.py) "this machine cannot run the service": skip, not fail.
CANNOT=77

say() { echo "testbed: $*" >&2; }
cannot() { say "$*"; exit "$CANNOT"; }
die() { say "$*"; exit 1; }

# The absolute path of $1, created if missing.
abs_dir() {
    mkdir -p "$1" && (cd "$1" && pwd -P)
}

# Pids of processes whose environment holds BNN_TESTBED=$1 (never this shell or its parents).
marked_pids() {
    local want="BNN_TESTBED=$1" env_file pid
    for env_file in /proc/[0-9]*/environ; do
        pid=${env_file#/proc/}; pid=${pid%/environ}
        [ "$pid" = "$$" ] && continue
        [ "$pid" = "$BASHPID" ] && continue
        if grep -qzxF "$want" "$env_file" 2>/dev/null; then echo "$pid"; fi
    done
}

# The pids given and all their descendants.
with_descendants() {
    local pid child
    for pid in "$@"; do
        echo "$pid"
        for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do with_descendants "$child"; done
    done
}

alive() { kill -0 "$1" 2>/dev/null; }

# Sends TERM to the pids, waits up to $1 seconds for them to end, then KILLs what is left.
terminate() {
    local wait_s=$1 pid i left
    shift
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null || true
    for ((i = 0; i < wait_s * 10; i++)); do
        left=0
        for pid in "$@"; do alive "$pid" && left=1; done
        [ "$left" = 0 ] && return 0
        sleep 0.1
    done
    kill -KILL "$@" 2>/dev/null || true
    sleep 0.2
}

# Ends every process marked with state folder $1, and their children.
kill_marked() {
    local pids
    # shellcheck disable=SC2046 # pids: one word each
    pids=$(with_descendants $(marked_pids "$1") | sort -un)
    # shellcheck disable=SC2086
    terminate "${2:-5}" $pids
}

# A free TCP port on 127.0.0.1 (the kernel picks it: bind port 0).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Unix socket paths must stay under 108 bytes (sun_path); $2 is the longest suffix the service adds.
check_path_length() {
    local dir=$1 suffix_len=$2
    if [ $((${#dir} + suffix_len)) -ge 100 ]; then
        die "state folder path too long for unix sockets (${#dir} chars + $suffix_len > 100): $dir; use a shorter one"
    fi
}
