#!/usr/bin/env bash
# Packs the two libraries and the advml tool, installs the tool from the local folder and runs `advml --help`.
#   bash build/check-pack.sh [OUT]   (OUT defaults to a temporary folder, removed afterwards)
# The tool is packed for linux-x64 only (the pointer package plus MLNet.Adversarial.Cli.linux-x64), which keeps this to
# about a minute; `dotnet pack src/Microsoft.ML.Adversarial.Cli -c Release` packs every platform (docs/packages.md).
# Run by PackagingTests (so CI counts it) after the solution is built; CONFIGURATION picks the build (default Release).
# Prints one line per package with its size in bytes, the installed size, and exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIGURATION="${CONFIGURATION:-Release}"
if [ $# -ge 1 ]; then out="$1"; mkdir -p "$out"; else out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi
pkg="$out/packages"; tools="$out/tool"
rm -rf "$pkg" "$tools"
# No build servers or reused nodes: nothing may outlive this script (a test runs it and waits for its output).
flags=(-c "$CONFIGURATION" -o "$pkg" --disable-build-servers -nologo -v:q)
fail() { echo "check-pack: FAILED: $*" >&2; exit 1; }

dotnet pack src/Microsoft.ML.Adversarial.Core "${flags[@]}" || fail "dotnet pack src/Microsoft.ML.Adversarial.Core"
dotnet pack src/Microsoft.ML.Adversarial "${flags[@]}" || fail "dotnet pack src/Microsoft.ML.Adversarial"
dotnet pack src/Microsoft.ML.Adversarial.Cli "${flags[@]}" -p:ToolPackageRuntimeIdentifiers=linux-x64 \
  || fail "dotnet pack src/Microsoft.ML.Adversarial.Cli -p:ToolPackageRuntimeIdentifiers=linux-x64"
# The linux-x64 build and publish folders hold two copies of libtorch (about 1 GB): the package has them now.
rm -rf "src/Microsoft.ML.Adversarial.Cli/bin/$CONFIGURATION/net10.0/linux-x64"
for f in "$pkg"/*.nupkg "$pkg"/*.snupkg; do
  echo "check-pack: package $(basename "$f") $(stat -c %s "$f") bytes"
done

# A private tool path: nothing global changes. Installs the pointer package, which fetches the linux-x64 one, from
# this folder only (a NuGet config that clears every other feed, so a published package of the same version cannot
# stand in for the one just packed).
cat > "$out/nuget.config" <<CONFIG
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="check-pack" value="$pkg" />
  </packageSources>
</configuration>
CONFIG
dotnet tool install --tool-path "$tools" --configfile "$out/nuget.config" MLNet.Adversarial.Cli --version "$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props)" \
  || fail "dotnet tool install --tool-path $tools --configfile $out/nuget.config MLNet.Adversarial.Cli (source: $pkg only)"
echo "check-pack: installed $(du -sb "$tools" | cut -f1) bytes in $tools"
help=$("$tools/advml" --help) || fail "$tools/advml --help exited with $?"
grep -q "Usage:" <<<"$help" || fail "advml --help printed no usage: $help"
echo "check-pack: advml --help ran from the installed tool"
echo "check-pack: OK"
