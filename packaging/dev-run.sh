#!/usr/bin/env bash
# Installs what is missing, builds, and runs ternd in the foreground on the dev config:
# 127.0.0.1:2525, queue under var/queue in the repository, relay from loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
packaging/deps.sh build
packaging/build.sh
# The dev maildrop (config/dev.yaml): only this user submits through it.
mkdir -p var/maildrop && chmod 0700 var/maildrop
# As root (a fresh machine's first login, a container) the dev instance stays root: it has
# no system user to drop to. A real installation sets user: (see config/tern.yaml).
if [ "$(id -u)" -eq 0 ]; then exec build/ternd --config config/dev.yaml --allow-root; fi
exec build/ternd --config config/dev.yaml
