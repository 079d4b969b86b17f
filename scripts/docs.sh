#!/usr/bin/env bash
# The documentation: the DocC catalogue (Sources/CCL/CCL.docc) combined with the symbols of every
# public module, in one archive under .build/plugins/Swift-DocC/outputs/. Extra arguments go to
# the plugin (CI passes --warnings-as-errors).
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(CCL CCLStore CCLQueue CCLCollectives CCLCollectiveAPI CCLBackend CCLCore CCLTopology CCLNCCL CCLSystem)
swift package generate-documentation "${targets[@]/#/--target=}" --enable-experimental-combined-documentation "$@"
