#!/usr/bin/env bash
# The main job: trains a clean and an adversarially trained SmallCnn on Fashion-MNIST through an ML.NET pipeline,
# then evaluates both on clean and attacked test images with ML.NET's metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
bash build/setup.sh
dotnet run -c Release --project samples/FashionMnistRobustness -- "$@"
