#!/usr/bin/env bash
# Start a throw-away MariaDB and PostgreSQL on loopback for the LimeSurvey database tests,
# installing them from Debian's packages when missing. Prints the environment the tests read:
#   eval "$(.ci/databases.sh)"
# sets PALAUTE_TEST_MYSQL_URL and PALAUTE_TEST_POSTGRES_URL. Servers run until the machine stops
# them (or `kill` on the pids in $PALAUTE_TEST_DB_DIR/*.pid); data lives under PALAUTE_TEST_DB_DIR.
set -euo pipefail

dir="${PALAUTE_TEST_DB_DIR:-${TMPDIR:-/tmp}/palaute-test-db}"
mkdir -p "$dir"
log() { echo "$@" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

need=()
command -v mariadbd >/dev/null 2>&1 || command -v mysqld >/dev/null 2>&1 || need+=(mariadb-server mariadb-client)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >&2
fi

# MariaDB, as root with its own data directory (no system service)
mysqld_bin=$(command -v mariadbd || command -v mysqld)
install_db=$(command -v mariadb-install-db || command -v mysql_install_db)
client=$(command -v mariadb || command -v mysql)
my="$dir/mariadb"
if [ -f "$my/port" ] && "$client" --protocol=tcp -h 127.0.0.1 -P "$(cat "$my/port")" -u palaute -ppalaute -e 'SELECT 1' >/dev/null 2>&1; then
  my_port=$(cat "$my/port")
else
  rm -rf "$my"; mkdir -p "$my"
  "$install_db" --no-defaults --datadir="$my/data" --user=root --auth-root-authentication-method=normal >"$my/install.log" 2>&1
  my_port=$(free_port)
  "$mysqld_bin" --no-defaults --datadir="$my/data" --user=root --bind-address=127.0.0.1 \
    --port="$my_port" --socket="$my/sock" --pid-file="$my/mariadb.pid" \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci >"$my/server.log" 2>&1 &
  for _ in $(seq 1 100); do
    "$client" -S "$my/sock" -u root -e 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.2
  done
  "$client" -S "$my/sock" -u root -e "CREATE DATABASE IF NOT EXISTS palaute_test CHARACTER SET utf8mb4;
    CREATE USER IF NOT EXISTS 'palaute'@'127.0.0.1' IDENTIFIED BY 'palaute';
    CREATE USER IF NOT EXISTS 'palaute'@'localhost' IDENTIFIED BY 'palaute';
    GRANT ALL ON palaute_test.* TO 'palaute'@'127.0.0.1';
    GRANT ALL ON palaute_test.* TO 'palaute'@'localhost';" >&2
  echo "$my_port" >"$my/port"
fi

# PostgreSQL, as the postgres user (it refuses to run as root), trust on loopback
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pg="$dir/postgres"
if [ -f "$pg/port" ] && runuser -u postgres -- "$pg_bin/pg_isready" -h 127.0.0.1 -p "$(cat "$pg/port")" >/dev/null 2>&1; then
  pg_port=$(cat "$pg/port")
else
  rm -rf "$pg"; mkdir -p "$pg"; chown postgres "$pg"
  runuser -u postgres -- "$pg_bin/initdb" -D "$pg/data" -A trust -U postgres -E UTF8 >"$pg/initdb.log" 2>&1
  pg_port=$(free_port)
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg/data" -l "$pg/server.log" -w \
    -o "-p $pg_port -k $pg -c listen_addresses=127.0.0.1" start >&2
  runuser -u postgres -- "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres palaute_test >&2
  echo "$pg_port" >"$pg/port"
fi

echo "export PALAUTE_TEST_MYSQL_URL=mysql://palaute:palaute@127.0.0.1:$my_port/palaute_test"
echo "export PALAUTE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$pg_port/palaute_test"
