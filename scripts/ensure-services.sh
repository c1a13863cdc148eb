#!/usr/bin/env bash
# Makes sure what the tests need is on this machine and answering on loopback:
# Debian packages (installed only when missing), PostgreSQL on 127.0.0.1:5432 and Redis on
# 127.0.0.1:6379 (started when down, with the commands the machine's documentation gives).
set -euo pipefail

APT="apt-get -o DPkg::Lock::Timeout=300"   # another apt may hold the dpkg lock
export DEBIAN_FRONTEND=noninteractive
apt_updated=""

install_packages() {
  echo "installing: $*"
  if [ -z "$apt_updated" ]; then $APT update -q; apt_updated=1; fi
  $APT install -y -q --no-install-recommends "$@"
}

# command -> the Debian package that brings it (installed only when the command is missing)
missing=()
# dovecot: the IMAP peer of the email tests; chromium: the browser of the web chat and console tests.
for pair in redis-server:redis-server redis-cli:redis-tools pg_isready:postgresql-client \
            psql:postgresql-client dovecot:dovecot-imapd dovecot:dovecot-core chromium:chromium; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
# Chinese text in the browser tests' screenshots (boxes without it; the tests pass either way)
fc-list 2>/dev/null | grep -qi "wenquanyi\|wqy" || missing+=(fonts-wqy-microhei)
if [ ${#missing[@]} -gt 0 ]; then
  install_packages $(printf '%s\n' "${missing[@]}" | sort -u)
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    install_packages postgresql
  fi
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  pg_isready -h 127.0.0.1 -p 5432
fi
if ! psql -h 127.0.0.1 -U postgres -d test -tAc 'select 1' >/dev/null 2>&1; then
  # A PostgreSQL we installed ourselves: give the tests the database they expect.
  su postgres -c "psql -tAc \"select 1 from pg_database where datname='test'\"" | grep -q 1 \
    || su postgres -c "createdb test"
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -h 127.0.0.1 -p 6379 ping
fi
