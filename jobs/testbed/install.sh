#!/usr/bin/env bash
# Installs what jobs/testbed/slurm.sh and postgres.sh run, and the browser the dashboard's tests drive, from Debian's
# packages: jobs/testbed/README.md.
# Idempotent and quiet: installs only the packages missing, and starts no service (the scripts start them).
# Does nothing (exit 0, one line why) when not root or without apt-get: the tests that need the services then skip.
set -euo pipefail

PACKAGES=(
    munge slurmctld slurmd slurm-client # the cluster
    slurmdbd mariadb-server             # its accounting: sacct, and so submitit's job states
    postgresql                          # the database server
    chromium                            # the dashboard's browser tests (driven by Playwright)
)

if [ "$EUID" != 0 ]; then
    echo "testbed install: not root, nothing installed (the SLURM, PostgreSQL and browser tests will skip)"
    exit 0
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
    echo "testbed install: no apt-get, nothing installed (the SLURM, PostgreSQL and browser tests will skip)"
    exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

t0=$SECONDS
echo "testbed install: apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
cleanup() { rm -f "$log"; }
if [ ! -e /usr/sbin/policy-rc.d ]; then
    # Packages start no daemon while they install (slurm.sh and postgres.sh start their own, in their own folders).
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    cleanup() { rm -f "$log" /usr/sbin/policy-rc.d; }
fi
trap cleanup EXIT
apt_install() {
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >"$log" 2>&1
}
if ! apt_install; then
    # A fresh machine may have no (or stale) package lists.
    apt-get update -q -o DPkg::Lock::Timeout=120 >>"$log" 2>&1 || true
    if ! apt_install; then
        tail -n 20 "$log" >&2
        echo "testbed install: apt-get install failed (above); the SLURM, PostgreSQL and browser tests will skip or fail" >&2
        exit 1
    fi
fi
echo "testbed install: done in $((SECONDS - t0))s"
