#!/usr/bin/env bash
# The run command (README, `make run`): venv, install, a secret key in .env, migrations, the demo
# knowledge base, then the gateway on http://127.0.0.1:8080 (web server + worker, supervised).
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
if ! grep -qs '^GATEWAY_SECRET_KEY=' .env; then
  echo "GATEWAY_SECRET_KEY=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))')" >> .env
  echo "wrote a new GATEWAY_SECRET_KEY to .env"
fi
export GATEWAY_DEMO="${GATEWAY_DEMO:-1}"
.venv/bin/gateway migrate
if [ "$GATEWAY_DEMO" = "1" ]; then
  .venv/bin/gateway kb import --if-empty knowledge_base/demo/demo_kb.yaml
fi
exec .venv/bin/gateway up
