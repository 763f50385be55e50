#!/usr/bin/env bash
# The main job: `advml reproduce --profile quick` trains the models the paper compares on Fashion-MNIST (CPU scale,
# under 15 minutes on 2 cores) and writes advml-reproduce/report.md with tables, findings and figures.
# Arguments go to `advml reproduce` (e.g. --profile full -o results).
set -euo pipefail
cd "$(dirname "$0")/.."
bash build/setup.sh
dotnet run -c Release --project src/Microsoft.ML.Adversarial.Cli -- reproduce "$@"
