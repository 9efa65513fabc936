#!/usr/bin/env bash
# Real services for the integration tests, all bound to 127.0.0.1:
#   moto    AWS APIs (Kinesis, S3, SNS, ...)      PyPI moto[server]
#   kafka   Apache Kafka, one KRaft node           Maven Central jars, Java 17
#   mysql   MariaDB                                Debian packages
#   postgres PostgreSQL (run as the `postgres` user when root)  Debian packages
# plus kcat (Debian), a Kafka client the tests use that is not ours, and prometheus_client
# (PyPI, beside moto), whose parser reads the /metrics exposition in the tests, and pyarrow and
# zstandard (PyPI, beside moto), which read back the lake's Parquet and zstd objects.
#
# Usage: scripts/services.sh up | down | status | env
#   up      install what is missing, start what is not running, wait until each answers
#   down    stop the processes this script started (pid files under .services/)
#   status  one line per service; exit code 3 when one is not answering
#   env     `export` lines for the tests: eval "$(scripts/services.sh env)"
#
# Kafka also listens with SASL_SSL and with SSL (client certificate required), MariaDB offers
# TLS; their certificates come from a test CA made in .services/tls (see ensure_tls).
# Environment: MOTO_PORT (5000), KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093),
# KAFKA_SASL_SSL_PORT (9094), KAFKA_SSL_PORT (9095),
# MYSQL_PORT (3306), POSTGRES_PORT (5432), SERVICES_TIMEOUT (seconds to wait for a start, 120), PROBE_TIMEOUT
# (seconds one readiness request may take, 10; a service that is up but slow to answer
# gets two more tries, each with twice the time, before `up` gives up on it).
# Logs and data live in .services/ (gitignored); Kafka's jars are cached in
# ${XDG_CACHE_HOME:-~/.cache}/sluice/kafka-<version>.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.services"
HOST=127.0.0.1

MOTO_PORT="${MOTO_PORT:-5000}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
# SASL_SSL (PLAIN, SCRAM-SHA-256/512) and SSL with a required client certificate.
KAFKA_SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-9094}"
KAFKA_SSL_PORT="${KAFKA_SSL_PORT:-9095}"
MYSQL_PORT="${MYSQL_PORT:-3306}"
POSTGRES_PORT="${POSTGRES_PORT:-5432}"
WAIT_SECS="${SERVICES_TIMEOUT:-120}"
PROBE_SECS="${PROBE_TIMEOUT:-10}"

MOTO_VERSION=5.2.1
PROMETHEUS_CLIENT_VERSION=0.23.1
PYARROW_VERSION=26.0.1
ZSTANDARD_VERSION=0.25.0
KAFKA_VERSION=4.1.2
SLF4J_VERSION=2.0.17
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
KAFKA_HOME="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"

# mariadbd and friends live in /usr/sbin, which a non-root PATH may lack.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

SERVICES=(moto kafka mysql postgres)

log() { printf 'services: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "not root and no sudo: cannot run $*"
  fi
}

# --- installation ---------------------------------------------------------------------

APT_UPDATED=0
apt_update() {
  ((APT_UPDATED)) && return 0
  log "apt-get update"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$STATE/apt.log" 2>&1 ||
    die "apt-get update failed (see $STATE/apt.log)"
  APT_UPDATED=1
}

# (Output is captured before matching: with pipefail, `cmd | grep -q` can fail on SIGPIPE.)
apt_installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == *'install ok installed'* ]]; }

apt_install() {
  local missing=() p
  for p in "$@"; do apt_installed "$p" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  # A package with no candidate needs fresh lists; otherwise try the lists we have first.
  for p in "${missing[@]}"; do
    if [[ ! $(apt-cache policy "$p" 2>/dev/null) =~ Candidate:\ [^\(] ]]; then
      apt_update
      break
    fi
  done
  log "installing Debian packages: ${missing[*]}"
  local cmd=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}")
  if ! as_root "${cmd[@]}" >>"$STATE/apt.log" 2>&1; then
    ((APT_UPDATED)) && die "apt-get install ${missing[*]} failed (see $STATE/apt.log)"
    apt_update
    as_root "${cmd[@]}" >>"$STATE/apt.log" 2>&1 ||
      die "apt-get install ${missing[*]} failed (see $STATE/apt.log)"
  fi
}

ensure_kcat() { command -v kcat >/dev/null 2>&1 || apt_install kcat; }

ensure_mariadb() {
  if ! command -v mariadbd >/dev/null 2>&1 || ! command -v mariadb-install-db >/dev/null 2>&1 ||
    ! command -v mariadb >/dev/null 2>&1; then
    apt_install mariadb-server-core mariadb-client-core
  fi
}

# --- TLS material for the secured listeners -----------------------------------------------
# A private CA made here with openssl (never trusted by the system), a server certificate it
# signs for 127.0.0.1 and localhost (Kafka's SASL_SSL and SSL listeners, MariaDB), and a
# client certificate for the listener that requires one. Made once; a CA that expires within a
# day is replaced with everything it signed. Keys are unencrypted PKCS#8, as Kafka's PEM key
# stores and MariaDB read them.
TLS_DIR="$STATE/tls"
# SCRAM and PLAIN user of the SASL_SSL listener; a test secret for a local broker only.
KAFKA_SASL_USER=sluice
KAFKA_SASL_PASSWORD=sluice-test-secret

ensure_tls() {
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  local d="$TLS_DIR"
  if [[ -s $d/ca.pem && -s $d/server.pem && -s $d/server.key && -s $d/client.pem && -s $d/client.key ]] &&
    openssl x509 -checkend 86400 -noout -in "$d/ca.pem" >/dev/null 2>&1; then
    return 0
  fi
  log "making a test CA and certificates in $d"
  rm -rf "$d.tmp"
  mkdir -p "$d.tmp"
  (
    cd "$d.tmp"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
      -subj '/CN=sluice test CA' -addext 'basicConstraints=critical,CA:TRUE' \
      -addext 'keyUsage=critical,keyCertSign,cRLSign'
    local name
    for name in server client; do
      openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "/CN=sluice test $name"
      if [[ $name == server ]]; then
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$name.ext"
      else
        printf 'extendedKeyUsage=clientAuth\n' >"$name.ext"
      fi
      openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile "$name.ext" -out "$name.pem"
      # Kafka's PEM key store wants the key and its chain in one file.
      cat "$name.key" "$name.pem" >"$name.keystore.pem"
    done
    rm -f ./*.csr ./*.ext ca.srl
  ) >"$STATE/tls.log" 2>&1 || die "openssl could not make the test certificates (log: $STATE/tls.log)"
  # MariaDB runs as root here or as this user; the key files stay private to the owner.
  chmod 600 "$d.tmp"/*.key "$d.tmp"/*.keystore.pem
  rm -rf "$d"
  mv "$d.tmp" "$d"
}

# Prints the major version of a java binary (8 for "1.8.0_x").
java_major() {
  local v
  v="$("$1" -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -n1)"
  v="${v#1.}"
  printf '%s' "${v%%[.+-]*}"
}

# Sets JAVA to a Java 17 binary (or newer when no 17 is present), installing one if needed.
JAVA=""
find_java() {
  local c fallback=""
  for c in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java 2>/dev/null || true)" \
    /usr/lib/jvm/java-17-*/bin/java /usr/lib/jvm/*/bin/java; do
    [[ -n $c && -x $c ]] || continue
    local m
    m="$(java_major "$c")"
    [[ $m =~ ^[0-9]+$ ]] || continue
    if ((m == 17)); then
      JAVA="$c"
      return 0
    fi
    if ((m > 17)) && [[ -z $fallback ]]; then fallback="$c"; fi
  done
  JAVA="$fallback"
  [[ -n $JAVA ]]
}

ensure_java() {
  [[ -n $JAVA ]] && return 0
  find_java && return 0
  apt_install openjdk-17-jre-headless
  find_java || die "no Java 17 found after installing openjdk-17-jre-headless"
}

ensure_kafka_jars() {
  [[ -f $KAFKA_LIBS/.complete ]] && return 0
  command -v mvn >/dev/null 2>&1 || apt_install maven
  log "fetching Apache Kafka $KAFKA_VERSION jars with Maven into $KAFKA_HOME"
  mkdir -p "$KAFKA_HOME"
  # slf4j-api is declared directly: Kafka brings 1.7.x, which does not see slf4j-simple 2.x
  # and would silently turn logging off. kafka-tools holds TopicCommand and ClusterTool.
  cat >"$KAFKA_HOME/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.sluice</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  rm -rf "$KAFKA_LIBS.tmp"
  # A private local repository keeps the cache self-contained; it is dropped once the jars
  # are copied out.
  if ! mvn -B -q -f "$KAFKA_HOME/pom.xml" -Dmaven.repo.local="$KAFKA_HOME/m2" \
    "$DEPENDENCY_PLUGIN:copy-dependencies" -DincludeScope=runtime \
    -DoutputDirectory="$KAFKA_LIBS.tmp" >"$KAFKA_HOME/mvn.log" 2>&1; then
    tail -n 30 "$KAFKA_HOME/mvn.log" >&2
    die "Maven could not fetch the Kafka jars (log: $KAFKA_HOME/mvn.log)"
  fi
  rm -rf "$KAFKA_LIBS" "$KAFKA_HOME/m2"
  mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
  touch "$KAFKA_LIBS/.complete"
}

# A python with moto[server] $MOTO_VERSION, boto3 and the tests' readers (imported below): the machine's own
# when it has them, else the project-local virtualenv. Prints its path, or nothing. The tests
# run their python snippets on it too (SERVICES_PYTHON).
moto_python_check() {
  "$1" -c "import sys, moto, flask, flask_cors, boto3, prometheus_client.parser, pyarrow.parquet, zstandard
sys.exit(moto.__version__ != '$MOTO_VERSION')" >/dev/null 2>&1
}

find_moto_python() {
  local sys_py
  if command -v python3 >/dev/null 2>&1 && moto_python_check python3; then
    sys_py="$(python3 -c 'import sys; print(sys.executable)')"
    printf '%s' "$sys_py"
    return 0
  fi
  if [[ -x $STATE/venv/bin/python ]] && moto_python_check "$STATE/venv/bin/python"; then
    printf '%s' "$STATE/venv/bin/python"
    return 0
  fi
  return 1
}

ensure_moto() {
  MOTO_PY="$(find_moto_python)" && return 0
  command -v python3 >/dev/null 2>&1 || apt_install python3
  log "installing moto[server]==$MOTO_VERSION, prometheus_client, pyarrow and zstandard into $STATE/venv"
  rm -rf "$STATE/venv"
  if ! python3 -m venv "$STATE/venv" >>"$STATE/moto-install.log" 2>&1; then
    # Debian's python3 needs python3-venv for ensurepip.
    local minor
    minor="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    apt_install python3-venv "python$minor-venv"
    rm -rf "$STATE/venv"
    python3 -m venv "$STATE/venv" >>"$STATE/moto-install.log" 2>&1 ||
      die "python3 -m venv failed (see $STATE/moto-install.log)"
  fi
  "$STATE/venv/bin/python" -m pip install -q --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" "prometheus_client==$PROMETHEUS_CLIENT_VERSION" \
    "pyarrow==$PYARROW_VERSION" "zstandard==$ZSTANDARD_VERSION" \
    >>"$STATE/moto-install.log" 2>&1 ||
    die "pip install moto[server]==$MOTO_VERSION prometheus_client pyarrow zstandard failed (see $STATE/moto-install.log)"
  MOTO_PY="$STATE/venv/bin/python"
  moto_python_check "$MOTO_PY" || die "moto $MOTO_VERSION is not importable after installing it"
}

# --- processes ------------------------------------------------------------------------

pid_file() { printf '%s' "$STATE/$1/pid"; }

# What a service's command line must contain, so a recycled pid is not taken for ours.
cmd_marker() {
  case "$1" in
  moto) printf 'moto.server' ;;
  kafka) printf 'kafka.Kafka' ;;
  mysql) printf 'mariadbd' ;;
  postgres) printf 'bin/postgres' ;;
  esac
}

# Prints the pid of our running process for a service, or fails.
our_pid() {
  local f pid
  f="$(pid_file "$1")"
  [[ -s $f ]] || return 1
  pid="$(<"$f")"
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *"$(cmd_marker "$1")"* ]] || return 1
  printf '%s' "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

service_port() {
  case "$1" in
  moto) printf '%s' "$MOTO_PORT" ;;
  kafka) printf '%s' "$KAFKA_PORT" ;;
  mysql) printf '%s' "$MYSQL_PORT" ;;
  postgres) printf '%s' "$POSTGRES_PORT" ;;
  esac
}

service_addr() {
  case "$1" in
  moto) printf 'http://%s:%s' "$HOST" "$MOTO_PORT" ;;
  kafka) printf '%s:%s' "$HOST" "$KAFKA_PORT" ;;
  mysql) printf 'mysql://root@%s:%s/fazendas' "$HOST" "$MYSQL_PORT" ;;
  postgres) printf 'postgres://postgres@%s:%s/sluice' "$HOST" "$POSTGRES_PORT" ;;
  esac
}

service_log() {
  case "$1" in
  moto) printf '%s' "$STATE/moto/moto.log" ;;
  kafka) printf '%s' "$STATE/kafka/kafka.log" ;;
  mysql) printf '%s' "$STATE/mysql/error.log" ;;
  postgres) printf '%s' "$STATE/postgres/postgres.log" ;;
  esac
}

mariadb_client() {
  mariadb --no-defaults --protocol=TCP -h "$HOST" -P "$MYSQL_PORT" -u root --connect-timeout=3 "$@"
}

kafka_tool() {
  "$JAVA" -Xmx256m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$KAFKA_LIBS/*" "$@"
}

# A small real request to each service that only that service answers this way, with a
# time limit of $2 seconds (default PROBE_TIMEOUT): moto's config (a few bytes whatever state
# moto holds, unlike its data.json), Kafka's ApiVersions and Metadata for no topic (a broker
# that lists itself serves clients), and SQL SELECT 1. None starts a JVM or reads state.
probe() {
  local secs="${2:-$PROBE_SECS}"
  case "$1" in
  moto)
    command -v python3 >/dev/null 2>&1 || return 1
    python3 - "$HOST" "$MOTO_PORT" "$secs" <<'EOF' >/dev/null 2>&1
import json, sys, urllib.request
host, port, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
with urllib.request.urlopen(f"http://{host}:{port}/moto-api/config", timeout=secs) as r:
    body = json.loads(r.read(65536))
sys.exit(0 if 200 <= r.status < 300 and isinstance(body, dict) and body else 1)
EOF
    ;;
  kafka)
    command -v python3 >/dev/null 2>&1 || return 1
    python3 - "$HOST" "$KAFKA_PORT" "$secs" <<'EOF' >/dev/null 2>&1
import socket, struct, sys
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

def recv(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            sys.exit(1)
        buf += chunk
    return buf

def call(sock, api_key, version, correlation, body):
    client = b"sluice-services"
    req = struct.pack(">hhih", api_key, version, correlation, len(client)) + client + body
    sock.sendall(struct.pack(">i", len(req)) + req)
    (size,) = struct.unpack(">i", recv(sock, 4))
    # Something else on the port answers with text, read here as an absurd size.
    if not 4 <= size <= 1 << 20:
        sys.exit(1)
    data = recv(sock, size)
    if struct.unpack(">i", data[:4])[0] != correlation:
        sys.exit(1)
    return data[4:]

with socket.create_connection((host, port), timeout=secs) as s:
    s.settimeout(secs)
    # ApiVersions v0: every broker version answers it; error 0 or 35 (unsupported version).
    if struct.unpack(">h", call(s, 18, 0, 1, b"")[:2])[0] not in (0, 35):
        sys.exit(1)
    # Metadata v4 for an empty topic list: throttle time, then the brokers array.
    brokers = struct.unpack(">i", call(s, 3, 4, 2, struct.pack(">ib", 0, 0))[4:8])[0]
    sys.exit(0 if brokers >= 1 else 1)
EOF
    ;;
  mysql)
    command -v mariadb >/dev/null 2>&1 || return 1
    [[ $(timeout "$secs" mariadb --no-defaults --protocol=TCP -h "$HOST" -P "$MYSQL_PORT" -u root \
      --connect-timeout="$secs" -N -B -e 'SELECT 1' 2>/dev/null) == 1 ]]
    ;;
  postgres)
    command -v psql >/dev/null 2>&1 || return 1
    [[ $(PGCONNECT_TIMEOUT="$secs" timeout "$secs" psql -X -h "$HOST" -p "$POSTGRES_PORT" -U postgres \
      -d postgres -Atc 'SELECT 1' 2>/dev/null) == 1 ]]
    ;;
  esac
}

# Whether a service answers on its port. A closed port needs no patience. An open one that
# does not answer in time may be the service on a loaded machine: two more tries, each with
# twice the time, before it is taken for something else. (One of ours that is still starting
# is not retried here: `up` waits for it until SERVICES_TIMEOUT.)
answers() {
  local name="$1" secs="$PROBE_SECS" try
  port_open "$(service_port "$name")" || return 1
  probe "$name" "$secs" && return 0
  our_pid "$name" >/dev/null && return 1
  for try in 2 3; do
    log "$name at $(service_addr "$name") did not answer within ${secs}s; trying again (try $try of 3)"
    secs=$((secs * 2))
    probe "$name" "$secs" && return 0
  done
  return 1
}

# Starts a detached process that outlives this script, records its pid.
launch() {
  local name="$1" logf="$2"
  shift 2
  # fd 9 is the lock of `up`: the service must not inherit it, or it would hold the lock.
  setsid nohup "$@" >"$logf" 2>&1 </dev/null 9>&- &
  printf '%s\n' "$!" >"$(pid_file "$name")"
  service_port "$name" >"$STATE/$name/port"
}

start_moto() {
  mkdir -p "$STATE/moto"
  launch moto "$STATE/moto/moto.log" "$MOTO_PY" -m moto.server -H "$HOST" -p "$MOTO_PORT"
}

start_kafka() {
  local dir="$STATE/kafka"
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT,SASL_SSL://$HOST:$KAFKA_SASL_SSL_PORT,SSL://$HOST:$KAFKA_SSL_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT,SASL_SSL://$HOST:$KAFKA_SASL_SSL_PORT,SSL://$HOST:$KAFKA_SSL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL
ssl.keystore.type=PEM
ssl.keystore.location=$TLS_DIR/server.keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
listener.name.ssl.ssl.client.auth=required
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
EOF
  if [[ ! -s $dir/cluster-id ]]; then
    kafka_tool kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1 >"$dir/cluster-id.tmp"
    [[ -s $dir/cluster-id.tmp ]] || die "kafka StorageTool random-uuid printed nothing"
    mv "$dir/cluster-id.tmp" "$dir/cluster-id"
  fi
  kafka_tool kafka.tools.StorageTool format -t "$(<"$dir/cluster-id")" \
    -c "$dir/server.properties" --ignore-formatted >"$dir/format.log" 2>&1 || {
    tail -n 20 "$dir/format.log" >&2
    die "kafka storage format failed (log: $dir/format.log)"
  }
  launch kafka "$dir/kafka.log" "$JAVA" -Xms256m -Xmx512m -XX:+UseG1GC \
    -Dorg.slf4j.simpleLogger.showDateTime=true \
    -Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd\'T\'HH:mm:ss.SSS \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties"
  tls_stamp >"$dir/tls.stamp"
}

# What a running Kafka or MariaDB was started with: the listeners' version and the server
# certificate. A service of ours started with another one is restarted by `up`.
tls_stamp() { printf 'listeners-v1 %s\n' "$(cksum <"$TLS_DIR/server.pem")"; }

tls_stale() {
  local name="$1"
  [[ $name == kafka || $name == mysql ]] || return 1
  our_pid "$name" >/dev/null || return 1
  [[ $(cat "$STATE/$name/tls.stamp" 2>/dev/null) != "$(tls_stamp)" ]]
}

# The SCRAM users of the SASL_SSL listener live in the cluster's metadata: added once per
# formatted data directory (its directory.id), through the PLAINTEXT listener.
kafka_scram_users() {
  local dir="$STATE/kafka" id
  id="$(sed -n 's/^directory.id=//p' "$dir/data/meta.properties" 2>/dev/null || true)"
  [[ -n $id && $(cat "$dir/scram-users" 2>/dev/null) == "$id $KAFKA_SASL_USER" ]] && return 0
  mkdir -p "$dir"
  ensure_java
  # One mechanism per request: Kafka 4.1 refuses a request that alters the same user twice.
  local mechanism
  for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
    kafka_tool kafka.admin.ConfigCommand --bootstrap-server "$HOST:$KAFKA_PORT" --alter \
      --add-config "$mechanism=[password=$KAFKA_SASL_PASSWORD]" \
      --entity-type users --entity-name "$KAFKA_SASL_USER" >"$dir/scram-users.log" 2>&1 || {
      tail -n 20 "$dir/scram-users.log" >&2
      log "warning: could not add the Kafka $mechanism user $KAFKA_SASL_USER (log: $dir/scram-users.log)"
      return 0
    }
  done
  [[ -n $id ]] && printf '%s %s\n' "$id" "$KAFKA_SASL_USER" >"$dir/scram-users"
  log "kafka SCRAM-SHA-256/512 user $KAFKA_SASL_USER added"
}

# The Unix socket path must stay under ~107 bytes.
mysql_socket() {
  local s="$STATE/mysql/mysqld.sock"
  if ((${#s} > 100)); then s="${TMPDIR:-/tmp}/sluice-mysqld-$MYSQL_PORT.sock"; fi
  printf '%s' "$s"
}

start_mysql() {
  local dir="$STATE/mysql" user_opt=()
  mkdir -p "$dir"
  [[ $(id -u) -eq 0 ]] && user_opt=(--user=root)
  if [[ ! -d $dir/data/mysql ]]; then
    rm -rf "$dir/data"
    mariadb-install-db --no-defaults --datadir="$dir/data" "${user_opt[@]}" \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 || {
      tail -n 20 "$dir/install.log" >&2
      rm -rf "$dir/data"
      die "mariadb-install-db failed (log: $dir/install.log)"
    }
  fi
  : >"$dir/error.log"
  launch mysql "$dir/mariadbd.out" mariadbd --no-defaults --datadir="$dir/data" "${user_opt[@]}" \
    --bind-address="$HOST" --port="$MYSQL_PORT" --socket="$(mysql_socket)" \
    --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
    --innodb-buffer-pool-size=64M --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    --ssl-ca="$TLS_DIR/ca.pem" --ssl-cert="$TLS_DIR/server.pem" --ssl-key="$TLS_DIR/server.key"
  tls_stamp >"$dir/tls.stamp"
}

# --- postgres -------------------------------------------------------------------------
# PostgreSQL from Debian's packages, its own cluster under .services/postgres (not Debian's
# `main` cluster, which is never created or started here): trust authentication on 127.0.0.1
# only, fsync off (test data), database `sluice` for the tests. initdb and postgres refuse to
# run as root, so as root they run as the `postgres` user the package creates.

postgres_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [[ -x $d/initdb && -x $d/postgres ]] && {
      printf '%s' "$d"
      return 0
    }
  done
  return 1
}

ensure_postgres() {
  if ! postgres_bin >/dev/null || ! command -v psql >/dev/null 2>&1; then
    # Without this, the package's postinst creates and starts a `main` cluster on 5432.
    as_root mkdir -p /etc/postgresql-common/createcluster.d
    printf 'create_main_cluster = false\n' | as_root tee /etc/postgresql-common/createcluster.d/sluice.conf >/dev/null
    apt_install postgresql postgresql-client
  fi
  postgres_bin >/dev/null || die "no initdb/postgres under /usr/lib/postgresql/*/bin after installing postgresql"
}

# Runs a command as the owner of the cluster: `postgres` when we are root, else ourselves.
as_postgres() {
  if [[ $(id -u) -eq 0 ]]; then
    setpriv --reuid=postgres --regid=postgres --init-groups --reset-env -- "$@"
  else
    "$@"
  fi
}

psql_client() {
  psql -X -h "$HOST" -p "$POSTGRES_PORT" -U postgres "$@"
}

start_postgres() {
  local dir="$STATE/postgres" bin
  bin="$(postgres_bin)"
  mkdir -p "$dir"
  [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
  as_postgres test -w "$dir" ||
    die "$dir is not writable by the postgres user (a parent directory is closed to it?)"
  if [[ ! -s $dir/data/PG_VERSION ]]; then
    as_postgres rm -rf "$dir/data"
    as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale \
      >"$dir/initdb.log" 2>&1 || {
      tail -n 20 "$dir/initdb.log" >&2
      die "initdb failed (log: $dir/initdb.log)"
    }
  fi
  local as_owner=()
  [[ $(id -u) -eq 0 ]] && as_owner=(setpriv --reuid=postgres --regid=postgres --init-groups --reset-env --)
  # The socket goes in the data directory: /var/run/postgresql may not exist or be writable.
  launch postgres "$dir/postgres.log" "${as_owner[@]}" "$bin/postgres" -D "$dir/data" \
    -c listen_addresses="$HOST" -c port="$POSTGRES_PORT" -c unix_socket_directories="$dir/data" \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
    -c shared_buffers=64MB -c log_min_messages=warning
}

postgres_create_database() {
  [[ $(psql_client -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'sluice'") == 1 ]] ||
    psql_client -d postgres -qc 'CREATE DATABASE sluice' >/dev/null
}

after_ready() {
  case "$1" in
  kafka) kafka_scram_users ;;
  mysql) mariadb_client -e 'CREATE DATABASE IF NOT EXISTS fazendas' ;;
  postgres) postgres_create_database ;;
  esac
}

report_failure() {
  local name="$1" why="$2" logf
  logf="$(service_log "$name")"
  log "error: $name $why at $(service_addr "$name")"
  if [[ -f $logf ]]; then
    log "last lines of $logf:"
    tail -n 40 "$logf" | sed 's/^/    /' >&2
  fi
}

# --- commands -------------------------------------------------------------------------

cmd_up() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock -w 600 9 || die "another \`scripts/services.sh up\` holds $STATE/.lock"
  # The moto and Kafka probes are small Python scripts.
  command -v python3 >/dev/null 2>&1 || apt_install python3

  local name pid to_start=()
  ensure_tls
  for name in "${SERVICES[@]}"; do
    if tls_stale "$name"; then
      log "$name runs without the current TLS listeners or certificate; restarting it"
      stop_one "$name"
    fi
    if answers "$name"; then
      if pid="$(our_pid "$name")"; then
        log "$name already running at $(service_addr "$name") (pid $pid)"
      else
        log "$name already answering at $(service_addr "$name") (not started by this script)"
      fi
      # What the tests expect inside the service (the `fazendas` database) may still be missing.
      after_ready "$name"
    elif pid="$(our_pid "$name")"; then
      local was
      was="$(cat "$STATE/$name/port" 2>/dev/null || true)"
      if [[ -n $was && $was != "$(service_port "$name")" ]]; then
        die "$name already runs on port $was (pid $pid), not $(service_port "$name"): run \`scripts/services.sh down\` first"
      fi
      # Ours but not answering yet (still starting): wait for it below.
      to_start+=("$name:wait")
    elif port_open "$(service_port "$name")"; then
      die "port $(service_port "$name") for $name is taken by something that does not answer like $name; free it or set another port"
    else
      to_start+=("$name")
    fi
  done

  ensure_kcat
  # The tests' python (SERVICES_PYTHON) is moto's, with what the tests import; a moto that
  # already runs keeps running on the python it started with.
  ensure_moto
  ((${#to_start[@]})) || return 0

  # Install everything first (apt is not parallel), then start all, then wait for all.
  for name in "${to_start[@]}"; do
    case "$name" in
    moto) ensure_moto ;;
    kafka) ensure_java && ensure_kafka_jars ;;
    mysql) ensure_mariadb ;;
    postgres) ensure_postgres ;;
    esac
  done
  for name in "${to_start[@]}"; do
    [[ $name == *:wait ]] && continue
    log "starting $name on $(service_addr "$name")"
    "start_$name"
  done

  local deadline=$((SECONDS + WAIT_SECS)) failed=0 entry
  for entry in "${to_start[@]}"; do
    name="${entry%:wait}"
    while :; do
      if probe "$name"; then
        after_ready "$name"
        log "$name ready at $(service_addr "$name") (pid $(our_pid "$name" || echo '?'))"
        break
      fi
      if ! our_pid "$name" >/dev/null; then
        report_failure "$name" "exited while starting"
        failed=1
        break
      fi
      if ((SECONDS >= deadline)); then
        report_failure "$name" "did not answer within ${WAIT_SECS}s"
        failed=1
        break
      fi
      sleep 0.5
    done
  done
  ((failed == 0)) || die "some services did not come up (logs in $STATE)"
}

stop_one() {
  local name="$1" pid i
  if ! pid="$(our_pid "$name")"; then
    rm -f "$(pid_file "$name")"
    log "$name: not running (no process started by this script)"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 60; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) did not stop in 30s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$(pid_file "$name")"
  log "$name stopped (pid $pid)"
}

cmd_down() {
  [[ -d $STATE ]] || return 0
  local name
  for name in "${SERVICES[@]}"; do stop_one "$name"; done
}

cmd_status() {
  local name pid rc=0 state
  for name in "${SERVICES[@]}"; do
    pid="$(our_pid "$name" || true)"
    if answers "$name"; then
      state=running
    elif [[ -n $pid ]]; then
      state=starting
      rc=3
    else
      state=stopped
      rc=3
    fi
    printf '%-6s %-9s %-42s pid %s\n' "$name" "$state" "$(service_addr "$name")" "${pid:--}"
  done
  if command -v kcat >/dev/null 2>&1; then
    printf '%-6s %-9s %s\n' kcat installed "$(command -v kcat)"
  else
    printf '%-6s %-9s\n' kcat missing
  fi
  return "$rc"
}

cmd_env() {
  local py java=java
  py="$(find_moto_python || command -v python3 || echo python3)"
  find_java && java="$JAVA"
  printf 'export %s=%q\n' \
    AWS_ENDPOINT_URL "http://$HOST:$MOTO_PORT" \
    AWS_REGION us-east-1 \
    AWS_DEFAULT_REGION us-east-1 \
    AWS_ACCESS_KEY_ID test \
    AWS_SECRET_ACCESS_KEY test \
    KAFKA_BROKERS "$HOST:$KAFKA_PORT" \
    KAFKA_LIBS "$KAFKA_LIBS" \
    KAFKA_JAVA "$java" \
    KAFKA_SASL_SSL_BROKERS "$HOST:$KAFKA_SASL_SSL_PORT" \
    KAFKA_SSL_BROKERS "$HOST:$KAFKA_SSL_PORT" \
    KAFKA_SASL_USERNAME "$KAFKA_SASL_USER" \
    KAFKA_SASL_PASSWORD "$KAFKA_SASL_PASSWORD" \
    SLUICE_TEST_CA "$TLS_DIR/ca.pem" \
    SLUICE_TEST_CLIENT_CERT "$TLS_DIR/client.pem" \
    SLUICE_TEST_CLIENT_KEY "$TLS_DIR/client.key" \
    MYSQL_URL "mysql://root@$HOST:$MYSQL_PORT/fazendas" \
    POSTGRES_URL "postgres://postgres@$HOST:$POSTGRES_PORT/sluice" \
    SERVICES_PYTHON "$py"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
*)
  printf 'usage: %s up|down|status|env\n' "$0" >&2
  exit 2
  ;;
esac
