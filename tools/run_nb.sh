#!/usr/bin/env bash
# Execute notebooks in place (fresh kernel, top to bottom), then clean and export.
# Usage: tools/run_nb.sh nbs/07_data.ipynb [more notebooks]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
if [ -z "${TORCH_HOME:-}" ] && [ -d ../shared/torch ]; then export TORCH_HOME="$(cd ../shared/torch && pwd)"; fi
for nb in "$@"; do
  "$bin/jupyter" nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1200 \
    --ExecutePreprocessor.kernel_name=python3 "$nb"
  "$bin/nbdev-clean" --fname "$nb"
done
"$bin/nbdev-export"
