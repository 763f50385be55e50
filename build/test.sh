#!/usr/bin/env bash
# Runs the whole test suite: installs what the native side and the PyTorch cross-check need, then dotnet test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash build/setup.sh --with-pytorch --with-mpi
# Layering (docs/architecture.md): no folder cycles, no ML.NET in the core. Fails in a second, before the build.
python3 build/check-layers.py
# Includes PackagingTests: dotnet pack, and the advml tool installed from the local folder running --help (build/check-pack.sh).
dotnet test Microsoft.ML.Adversarial.sln -c Release --logger "console;verbosity=normal" "$@"
