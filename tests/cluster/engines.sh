#!/usr/bin/env bash
# The engines of `make test-cluster`, on this machine, as root: a PostgreSQL server, an MLflow
# tracking server backed by it (artifacts served through it) and a single-node SLURM cluster
# with accounting (slurmdbd over MariaDB).
#
#   tests/cluster/engines.sh install          slurm-wlm slurmdbd munge mariadb-server postgresql
#   tests/cluster/engines.sh start | stop     all engines (stop: those start started, by pid file)
#   tests/cluster/engines.sh start-mlflow | stop-mlflow | start-postgres | stop-postgres
#
# Everything lives in $STATE (data folders, MLflow's artifacts, pid files, logs) except SLURM's
# configuration, which its daemons read from /etc/slurm/.
set -euo pipefail

STATE=${NORMCOEF_CLUSTER_STATE:-/tmp/normcoef-cluster}
PY=${PY:-$(cd "$(dirname "$0")/../.." && pwd)/.venv/bin/python}
PG_PORT=${NORMCOEF_PG_PORT:-55432}
MLFLOW_PORT=${NORMCOEF_MLFLOW_PORT:-55000}
DB_PORT=${NORMCOEF_SLURMDB_PORT:-53306} # MariaDB of slurmdbd
NODE=$(hostname -s)
PG_URI=postgresql://postgres@127.0.0.1:$PG_PORT
MLFLOW_URI=http://127.0.0.1:$MLFLOW_PORT

say() { echo "engines: $*" >&2; }

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

wait_for() { # wait_for SECONDS WHAT COMMAND...: retry COMMAND every half second
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            say "$what not up after $seconds s"
            return 1
        fi
        sleep 0.5
    done
}

stop_pid() { # stop_pid PIDFILE: SIGTERM, SIGKILL after 10 s
    [[ -f $1 ]] || return 0
    local pid
    pid=$(cat "$1")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$1"
}

install() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurm-wlm)
    command -v slurmdbd >/dev/null || missing+=(slurmdbd)
    command -v munged >/dev/null || missing+=(munge)
    command -v mariadbd >/dev/null || missing+=(mariadb-server)
    [[ -n $(pg_bin) ]] || missing+=(postgresql)
    if ((${#missing[@]})); then
        say "installing ${missing[*]}"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

start_postgres() {
    local data=$STATE/postgres bin
    bin=$(pg_bin)
    if [[ ! -f $data/PG_VERSION ]]; then
        mkdir -p "$data"
        chown postgres: "$data"
        runuser -u postgres -- "$bin/initdb" -D "$data" -A trust -U postgres >"$STATE/initdb.log"
    fi
    runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w start \
        -o "-p $PG_PORT -k $data -c listen_addresses=127.0.0.1 -c max_connections=200" >/dev/null
    for db in mlflow optuna; do
        runuser -u postgres -- "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -qtAc \
            "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
            runuser -u postgres -- "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" "$db"
    done
    say "PostgreSQL on $PG_URI (databases mlflow, optuna)"
}

stop_postgres() {
    [[ -f $STATE/postgres/postmaster.pid ]] || return 0
    runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$STATE/postgres" -m fast -w stop >/dev/null ||
        true
}

start_mlflow() {
    mkdir -p "$STATE/artifacts"
    # Artifacts go through the server (--serve-artifacts): jobs need no shared disk for them.
    # No job runner: its processes serve GenAI jobs, tracking needs none.
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid "$PY" -m mlflow server \
        --backend-store-uri "$PG_URI/mlflow" --serve-artifacts \
        --artifacts-destination "$STATE/artifacts" --host 127.0.0.1 --port "$MLFLOW_PORT" \
        --workers 2 >>"$STATE/mlflow.log" 2>&1 &
    echo $! >"$STATE/mlflow.pid"
    # A cold start on a busy 2-core machine (and a new schema's migrations) takes a minute.
    wait_for 240 "the MLflow server ($STATE/mlflow.log)" \
        "$PY" -c "import urllib.request; urllib.request.urlopen('$MLFLOW_URI/health', timeout=5)"
    say "MLflow server on $MLFLOW_URI"
}

stop_mlflow() {
    [[ -f $STATE/mlflow.pid ]] || return 0
    local pid
    pid=$(cat "$STATE/mlflow.pid")
    kill -TERM -- "-$pid" 2>/dev/null || true # the server and its workers: one group (setsid)
    for _ in $(seq 40); do
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$STATE/mlflow.pid"
}

start_slurmdbd() {
    # Accounting: submitit reads how a job ended (CANCELLED, FAILED...) from sacct; without
    # it, a sweep whose job was cancelled waits for that job forever.
    mkdir -p "$STATE/mariadb"
    if [[ ! -d $STATE/mariadb/mysql ]]; then
        chown mysql: "$STATE/mariadb"
        mariadb-install-db --user=mysql --datadir="$STATE/mariadb" --skip-test-db \
            >"$STATE/mariadb-install.log" 2>&1
    fi
    # Grant tables skipped: a loopback database for slurmdbd alone.
    setsid mariadbd --user=mysql --datadir="$STATE/mariadb" --port="$DB_PORT" \
        --bind-address=127.0.0.1 --socket="$STATE/mariadb/mariadb.sock" \
        --pid-file="$STATE/mariadb/mariadb.pid" --log-error="$STATE/mariadb/server.err" \
        --skip-grant-tables >/dev/null 2>&1 &
    wait_for 60 "MariaDB ($STATE/mariadb/server.err)" \
        mariadb -h 127.0.0.1 -P "$DB_PORT" -u root -e "SELECT 1"
    cat >/etc/slurm/slurmdbd.conf <<EOF
# Written by normcoef's tests/cluster/engines.sh for make test-cluster.
AuthType=auth/munge
DbdHost=$NODE
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=root
StorageLoc=slurm_acct_db
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
EOF
    chmod 600 /etc/slurm/slurmdbd.conf
    slurmdbd
}

write_slurm_conf() {
    local memory
    memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    # No cgroups here: processes are tracked by their parent ids, tasks are not bound.
    cat >/etc/slurm/slurm.conf <<EOF
# Written by normcoef's tests/cluster/engines.sh: a single-node cluster for make test-cluster.
ClusterName=normcoef
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$NODE
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
KillWait=30
NodeName=$NODE CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_slurm() {
    mkdir -p /run/munge /var/spool/slurmctld /var/spool/slurmd /etc/slurm
    chown munge: /run/munge
    [[ -f /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
    runuser -u munge -- munged --pid-file=/run/munge/normcoef-munged.pid
    write_slurm_conf
    start_slurmdbd
    wait_for 60 "slurmdbd ($STATE/slurmdbd.log)" sacctmgr -n list cluster
    sacctmgr -n list cluster format=cluster | grep -qw normcoef ||
        sacctmgr -i add cluster normcoef >/dev/null
    slurmctld -c # -c: a clean state, no jobs of an earlier start
    slurmd
    wait_for 120 "SLURM's node $NODE" bash -c "sinfo -h -N -o %t | grep -q idle"
    say "SLURM: node $NODE idle, answers srun ($(srun -N1 -t 1 hostname)) and sacct"
}

stop_slurm() {
    scancel --user=root 2>/dev/null || true
    stop_pid "$STATE/slurmd.pid"
    stop_pid "$STATE/slurmctld.pid"
    stop_pid "$STATE/slurmdbd.pid"
    stop_pid "$STATE/mariadb/mariadb.pid"
    stop_pid /run/munge/normcoef-munged.pid
}

case ${1:-} in
install) install ;;
start)
    mkdir -p "$STATE"
    start_postgres
    start_mlflow
    start_slurm
    ;;
stop)
    stop_slurm
    stop_mlflow
    stop_postgres
    ;;
start-mlflow) start_mlflow ;;
stop-mlflow) stop_mlflow ;;
start-postgres) start_postgres ;;
stop-postgres) stop_postgres ;;
*)
    echo "usage: $0 install|start|stop|start-mlflow|stop-mlflow|start-postgres|stop-postgres" >&2
    exit 2
    ;;
esac
