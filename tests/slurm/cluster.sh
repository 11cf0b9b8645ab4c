#!/bin/sh
# tests/slurm/cluster.sh: a one-node Slurm cluster on this machine, for tests/test_slurm.c.
# munged, slurmctld and slurmd from Debian's munge and slurm-wlm (`make deps`), run as root, with
# every file under DIR: slurm.conf (use it with SLURM_CONF=DIR/slurm.conf), the controller's state,
# slurmd's spool, the logs, a munge key and socket of its own. Ports are picked free from 17000
# up, so it runs beside a system cluster or another test's.
#   cluster.sh start DIR [OWNER_PID]  start, then wait until the node is idle. With OWNER_PID, a
#                                     watchdog stops the cluster when that process is gone, even
#                                     if it was killed.
#   cluster.sh stop DIR               scontrol shutdown, then the daemons by their pid files
# On failure: exit status 1 and one line on stderr ("slurm-test: ..."), with log tails after it.
set -u
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: cluster.sh start|stop DIR [OWNER_PID]" >&2; exit 2; }
mkdir -p "$dir" && dir=$(cd "$dir" && pwd) || exit 1
conf=$dir/slurm.conf

fail() {
    echo "slurm-test: $*" >&2
    for f in "$dir"/log/*.log; do
        [ -s "$f" ] && { echo "---- $f" >&2; tail -n 8 "$f" >&2; }
    done
    exit 1
}

# a daemon's pid from its pid file, when that process is alive
alive() {
    [ -s "$1" ] || return 1
    p=$(cat "$1" 2>/dev/null) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
}

stop() {
    if [ -f "$conf" ] && alive "$dir/slurmctld.pid" >/dev/null; then
        # jobs first: a slurmstepd outlives slurmd, so nothing may be running at the shutdown
        ids=$(SLURM_CONF=$conf timeout 10 squeue -h -o %A 2>/dev/null)
        [ -n "$ids" ] && SLURM_CONF=$conf timeout 10 scancel $ids >/dev/null 2>&1
        i=0
        while [ $i -lt 75 ] && [ -n "$(SLURM_CONF=$conf timeout 10 squeue -h -o %A 2>/dev/null)" ]; do
            sleep 0.2; i=$((i + 1))
        done
    fi
    if [ -f "$conf" ] && { alive "$dir/slurmctld.pid" >/dev/null || alive "$dir/slurmd.pid" >/dev/null; }; then
        SLURM_CONF=$conf timeout 10 scontrol shutdown >/dev/null 2>&1
        i=0
        while [ $i -lt 50 ] && { alive "$dir/slurmctld.pid" >/dev/null || alive "$dir/slurmd.pid" >/dev/null; }; do
            sleep 0.2; i=$((i + 1))
        done
    fi
    for d in slurmd slurmctld munged watchdog; do
        p=$(alive "$dir/$d.pid") && kill -TERM "$p" 2>/dev/null
    done
    sleep 0.2
    for d in slurmd slurmctld munged; do
        p=$(alive "$dir/$d.pid") && kill -KILL "$p" 2>/dev/null
    done
    # job step daemons of this cluster still alive (their working directory is our log directory)
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/cwd" 2>/dev/null)" = "$dir/log" ] || continue
        case $(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) in
        slurmstepd*) kill -KILL "${p#/proc/}" 2>/dev/null ;;
        esac
    done
    rm -f "$dir"/*.pid
    if [ -s "$dir/munge/sockdir" ]; then
        rm -rf "$(cat "$dir/munge/sockdir")" "$dir/munge/sockdir"
    fi
    return 0
}

case $cmd in
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: cluster.sh start|stop DIR [OWNER_PID]" >&2; exit 2 ;;
esac

# ---- start ----
[ "$(id -u)" = 0 ] || fail "must run as root to start munged, slurmctld and slurmd (CI runs make test as root)"
for b in munged munge slurmctld slurmd sbatch squeue scontrol sinfo scancel; do
    command -v $b >/dev/null 2>&1 || fail "$b is not installed: run 'make deps' (Debian packages slurm-wlm, munge)"
done
stop   # leftovers of an earlier run in the same directory
rm -rf "$dir/state" "$dir/spool" "$dir/log" "$dir/munge"
mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/munge/key" || fail "cannot create $dir"
chmod 755 "$dir/munge"; chmod 700 "$dir/munge/key"

# munge: a key of our own (1 KiB of random bytes, root-only), socket under DIR. The socket path
# must fit in sun_path (108 bytes); a deep checkout falls back to a directory under /tmp.
key=$dir/munge/key/munge.key
head -c 1024 /dev/urandom > "$key" && chmod 400 "$key" || fail "cannot write the munge key $key"
sockdir=$dir/munge
if [ ${#sockdir} -gt 90 ]; then
    sockdir=$(mktemp -d /tmp/lowbit-munge.XXXXXX) && chmod 755 "$sockdir" || fail "mktemp failed"
    echo "$sockdir" > "$dir/munge/sockdir"
fi
sock=$sockdir/munge.socket
munged -f --key-file="$key" --socket="$sock" --pid-file="$dir/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed" </dev/null >>"$dir/log/munged.log" 2>&1 \
    || fail "munged did not start"
munge -n -S "$sock" 2>>"$dir/log/munged.log" | unmunge -S "$sock" >/dev/null 2>>"$dir/log/munged.log" \
    || fail "munge credentials do not round-trip through $sock"

# two free TCP ports (not listening in /proc/net/tcp*)
port_free() {
    hex=$(printf '%04X' "$1")
    ! grep -qi ":$hex [0-9A-F:]* 0A " /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
port=17000
while [ $port -lt 17400 ] && ! { port_free $port && port_free $((port + 1)); }; do port=$((port + 2)); done
[ $port -lt 17400 ] || fail "no two free TCP ports in 17000-17400"

host=$(hostname -s)
cpus=$(nproc)
mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)
[ -n "$mem" ] || mem=2048
[ "$mem" -gt 16384 ] && mem=16384
# proctrack/linuxproc and task/none: no cgroups needed (containers); no accounting daemon, so
# sacct is off and finished jobs are known to scontrol for MinJobAge seconds
cat > "$conf" <<EOF
# generated by tests/slurm/cluster.sh: a one-node test cluster, everything under $dir
ClusterName=lowbit-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
KillWait=3
MinJobAge=600
MailProg=/bin/true
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=lowbit Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$conf
slurmctld -i -f "$conf" </dev/null >>"$dir/log/slurmctld.out" 2>&1 || fail "slurmctld did not start"
slurmd -f "$conf" </dev/null >>"$dir/log/slurmd.out" 2>&1 || fail "slurmd did not start"
i=0
until [ "$(sinfo -h -o %t 2>/dev/null)" = idle ]; do
    i=$((i + 1))
    [ $i -gt 100 ] && { st=$(sinfo -h -o %t 2>&1); stop; fail "the node did not become idle in 20 s (sinfo: ${st:-nothing})"; }
    sleep 0.2
done

if [ -n "${3:-}" ]; then
    owner=$3
    (
        trap '' HUP INT
        while kill -0 "$owner" 2>/dev/null; do sleep 1; done
        sh "$0" stop "$dir"
    ) </dev/null >/dev/null 2>&1 &
    echo $! > "$dir/watchdog.pid"
fi
echo "slurm-test: cluster up in $dir (controller port $port, node $host, $cpus cpus, ${mem} MB)"
