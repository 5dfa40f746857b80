#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (unit tests and the
# integration scenarios, which start their own DNS server and SMTP peers on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
packaging/deps.sh test
packaging/build.sh
ctest --test-dir build --output-on-failure -j2 --timeout 300
