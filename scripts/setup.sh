#!/usr/bin/env bash
# Installs what swift-ccl's build and tests need on a fresh Debian machine with Swift 6.3.
# Idempotent. Today: nothing beyond Swift itself, except iproute2 for the network-namespace
# tests when it is missing.
set -euo pipefail
if ! command -v swift >/dev/null; then
  echo "setup: Swift 6.3 is required (https://swift.org/install)" >&2
  exit 1
fi
if ! command -v ip >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null
fi
