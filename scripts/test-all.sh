#!/usr/bin/env bash
# The whole test suite against real services: installs dependencies, starts moto, Kafka and
# MariaDB (scripts/services.sh), then typecheck, lint and every vitest project.
# Endpoints come from `scripts/services.sh env`; a variable already exported wins.
# The services are left running at the end so that a rerun is fast; stop them with
# `scripts/services.sh down`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

npm ci --no-audit --no-fund

scripts/services.sh up

services_env="$(scripts/services.sh env)"
while IFS= read -r line; do
  [[ $line =~ ^export\ ([A-Za-z_][A-Za-z0-9_]*)= ]] || continue
  name="${BASH_REMATCH[1]}"
  if [[ -z ${!name+set} ]]; then eval "$line"; fi
done <<<"$services_env"

npm run typecheck
npm run lint
npx vitest run
