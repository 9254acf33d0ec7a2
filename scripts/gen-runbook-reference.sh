#!/usr/bin/env bash
# Regenerates the reference section of runbooks/README.md from the engine's registry: the
# intro above `## Host API reference` stays, the rest is `kfguard runbook api --output markdown`.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
readme=runbooks/README.md
intro=$(sed '/^## Host API reference$/,$d' "$readme")
api=$(cargo run --quiet -- runbook api --output markdown)
printf '%s\n\n%s\n' "$intro" "$api" > "$readme"
echo "regenerated $readme" >&2
