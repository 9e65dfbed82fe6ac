#!/usr/bin/env bash
# A real two-node Slurm test cluster with fake GPUs and a local registry on this host (idempotent;
# Debian 12, as root, no systemd). What it does, each step skipped when already done:
#   - apt installs slurm-wlm slurmctld slurmd slurm-client munge podman docker-registry
#   - writes slurm.conf / gres.conf / cgroup.conf under $VDBENCH_SLURM_HOME/etc (linked from
#     /etc/slurm, where every Slurm client looks) and a registry config
#   - two nodes on one host: slurmd -N n1 and slurmd -N n2 (NodeAddr=127.0.0.1, distinct ports);
#     n1 has 2 fake GPUs (gres gpu:2, device files made with mknod, Features=gpumem16g), n2 none
#   - starts munged, slurmctld and both slurmd by hand, and docker-registry on 127.0.0.1:$REGISTRY_PORT
#   - marks that registry insecure for podman (registries.conf.d); docker allows 127.0.0.0/8 already
# PIDs go to $VDBENCH_SLURM_HOME/pids/*.pid; scripts/stop-slurm.sh ends exactly those.
set -euo pipefail

HOME_DIR=${VDBENCH_SLURM_HOME:-/var/lib/vdbench-slurm}
REGISTRY_PORT=${VDBENCH_REGISTRY_PORT:-5077}
CTLD_PORT=6817
ETC=$HOME_DIR/etc
PIDS=$HOME_DIR/pids
LOGS=$HOME_DIR/log
WAIT_SECONDS=60
NODES=(n1 n2)

say() { echo "start-slurm: $*"; }
die() { echo "start-slurm: ERROR: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (slurmd, munged and podman need it here)"

# -- packages -------------------------------------------------------------------------------
need=()
for pair in sbatch:slurm-client slurmctld:slurmctld slurmd:slurmd munged:munge podman:podman docker-registry:docker-registry; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair#*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
    say "installing ${need[*]} slurm-wlm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends slurm-wlm "${need[@]}" runc >/dev/null \
        || { apt-get update -q >/dev/null; apt-get install -y -q --no-install-recommends slurm-wlm "${need[@]}" runc >/dev/null; }
fi

mkdir -p "$ETC" "$PIDS" "$LOGS" "$HOME_DIR/ctld" "${NODES[@]/#/$HOME_DIR/spool/}" "$HOME_DIR/dev" "$HOME_DIR/registry"

# -- fake GPUs: character devices (like /dev/null) that Slurm hands out as gres gpu -----------
for i in 0 1; do
    [ -c "$HOME_DIR/dev/gpu$i" ] || mknod "$HOME_DIR/dev/gpu$i" c 1 3
done

# -- configuration (rewritten every time: cheap, and it keeps the cluster matching this script)
write_if_changed() {  # path, content: a changed slurm.conf needs the daemons restarted
    if [ ! -f "$1" ] || [ "$(cat "$1")" != "$2" ]; then printf '%s\n' "$2" >"$1"; echo changed; fi
}
conf_changed=$(write_if_changed "$ETC/slurm.conf" "# written by scripts/start-slurm.sh (pytest-vdbench test cluster)
ClusterName=vdbench
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$HOME_DIR/ctld
SlurmdSpoolDir=$HOME_DIR/spool/%n
SlurmctldPidFile=$HOME_DIR/slurmctld.pid
SlurmdPidFile=$HOME_DIR/slurmd-%n.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
GresTypes=gpu
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=300
InactiveLimit=0
SchedulerParameters=sched_min_interval=0
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
NodeName=n1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=6818 CPUs=8 RealMemory=8192 Gres=gpu:2 Features=gpumem16g State=UNKNOWN
NodeName=n2 NodeHostname=localhost NodeAddr=127.0.0.1 Port=6819 CPUs=8 RealMemory=8192 State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP")
write_if_changed "$ETC/gres.conf" "NodeName=n1 Name=gpu File=$HOME_DIR/dev/gpu[0-1]" >/dev/null
write_if_changed "$ETC/cgroup.conf" "# task/none and proctrack/linuxproc confine nothing; slurmd still loads a cgroup plugin (no systemd here)
CgroupPlugin=autodetect
IgnoreSystemd=yes" >/dev/null
mkdir -p /etc/slurm
for f in slurm.conf gres.conf cgroup.conf; do
    if [ -e "/etc/slurm/$f" ] && [ ! -L "/etc/slurm/$f" ]; then
        cmp -s "/etc/slurm/$f" "$ETC/$f" || die "/etc/slurm/$f exists and is not ours; move it away"
    fi
    ln -sfn "$ETC/$f" "/etc/slurm/$f"
done
cat >"$ETC/registry.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $HOME_DIR/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
EOF
mkdir -p /etc/containers/registries.conf.d
cat >/etc/containers/registries.conf.d/50-vdbench-local.conf <<EOF
# written by pytest-vdbench scripts/start-slurm.sh: the test cluster's registry speaks plain HTTP
[[registry]]
location = "127.0.0.1:$REGISTRY_PORT"
insecure = true
EOF
mkdir -p /etc/containers/containers.conf.d
cat >/etc/containers/containers.conf.d/50-vdbench.conf <<EOF
# written by pytest-vdbench scripts/start-slurm.sh. No systemd here: cgroupfs, file events.
# Checked on this host kind: crun refuses the hybrid cgroup v1 + unified mount ("hybrid mode not
# supported") and podman's default nofile/nproc (1048576) cannot be set; runc with these limits works.
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF

# -- daemons ----------------------------------------------------------------------------------
alive() { [ -r "$PIDS/$1.pid" ] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }
stop_one() {
    if alive "$1"; then kill "$(cat "$PIDS/$1.pid")"; for _ in $(seq 50); do alive "$1" || break; sleep 0.1; done; fi
    rm -f "$PIDS/$1.pid"
}
if [ -n "$conf_changed" ]; then
    say "configuration changed: restarting slurm daemons that run"
    for n in "${NODES[@]}"; do stop_one "slurmd-$n"; done
    stop_one slurmctld
fi

if [ ! -s /etc/munge/munge.key ]; then
    say "writing /etc/munge/munge.key"
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
fi
if ! alive munged; then
    install -d -o munge -g munge -m 755 /run/munge
    install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged --force
    for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$PIDS/munged.pid"
fi

start_bg() {  # name, command...: run in the background, log to $LOGS/name.out, record the pid
    local name=$1; shift
    if alive "$name"; then return 0; fi
    say "starting $name"
    nohup "$@" >>"$LOGS/$name.out" 2>&1 </dev/null &
    echo $! >"$PIDS/$name.pid"
}
start_bg slurmctld /usr/sbin/slurmctld -D -i
for n in "${NODES[@]}"; do start_bg "slurmd-$n" /usr/sbin/slurmd -D -N "$n"; done
start_bg registry /usr/bin/docker-registry serve "$ETC/registry.yml"

# -- wait until both nodes are idle and the registry answers -----------------------------------
for ((i = 0; i < WAIT_SECONDS * 5; i++)); do
    states=$(sinfo -h -N -o '%N %t' 2>/dev/null | sort -u | tr '\n' ' ' || true)
    ready=1
    for n in "${NODES[@]}"; do up="$n (idle|mix|alloc)"; [[ "$states" =~ $up ]] || ready=0; done
    if [ "$ready" = 1 ] && curl -fsS -o /dev/null "http://127.0.0.1:$REGISTRY_PORT/v2/"; then
        say "cluster ready after $((i / 5))s: $states| registry 127.0.0.1:$REGISTRY_PORT"
        exit 0
    fi
    for n in "${NODES[@]}"; do  # a node left DOWN by an earlier run comes back
        down="$n (down|drain|unk)"
        [[ "$states" =~ $down ]] && scontrol update NodeName="$n" State=RESUME >/dev/null 2>&1 || true
    done
    sleep 0.2
done
echo "start-slurm: ERROR: nodes not idle within ${WAIT_SECONDS}s (sinfo: ${states:-no answer}); logs in $LOGS:" >&2
tail -n 15 "$LOGS"/*.log "$LOGS"/*.out >&2 2>/dev/null || true
exit 1
