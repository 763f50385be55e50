#!/usr/bin/env bash
# The README's commands on a fresh minimal Debian, as a new user would run them: builds a minimal root with debootstrap
# (what a `debian:12` / `debian:13` container holds) in a temporary folder, adds what such a user adds (ca-certificates,
# git, the .NET runtime's libicu/libssl/zlib, and the host's .NET SDK, mounted read-only), clones this repository's
# committed HEAD (or --ref) into it, then, timing each step:
#   setup   bash build/setup.sh                        (what the main job installs)
#   build   dotnet build -c Release                     (NuGet restore from the registry, nothing from the host's cache)
#   main    bash build/run.sh --profile PROFILE -o out  (the main job; its figures are checked for text afterwards)
#   tests   bash build/test.sh --filter FOCUS           (installs python3-torch and MPICH as the test command does)
#   figures python3 build/check-figures.py out          (title and axis labels drawn: the font comes with advml)
# and removes the root. Exit 0 only when every step passed.
#
#   sudo bash build/check-fresh.sh [--suite bookworm|trixie] [--profile smoke|quick] [--ref COMMIT] [--keep]
#
# Root (debootstrap, chroot, mounts) and a Debian host with a reachable Debian mirror (the host's own) are needed;
# about 4 GB of disk under /var/tmp. The host's local CA certificates (/usr/local/share/ca-certificates) and
# NUGET_CERT_REVOCATION_MODE go into the root: a network that inspects TLS needs them, a user's machine does not. With --suite trixie the libstdc++ step of setup.sh must find nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

suite=bookworm profile=smoke ref=HEAD keep=0
focus="FullyQualifiedName~FigureTextTests|FullyQualifiedName~DistributedTrainingTests|FullyQualifiedName~PyTorchReferenceTests|FullyQualifiedName~FastPathCheckTests"
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) suite=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --ref) ref=$2; shift 2 ;;
    --filter) focus=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "check-fresh.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$suite" in
  bookworm|12) suite=bookworm; icu=libicu72 ;;
  trixie|13) suite=trixie; icu=libicu76 ;;
  *) echo "check-fresh.sh: --suite must be bookworm or trixie, got '$suite'" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "check-fresh.sh: run as root (debootstrap, chroot and mounts need it)." >&2; exit 1; }
commit=$(git rev-parse --verify "$ref^{commit}") || { echo "check-fresh.sh: '$ref' is not a commit of this repository." >&2; exit 2; }
dotnet_bin=$(readlink -f "$(command -v dotnet)") || { echo "check-fresh.sh: the .NET SDK is not on PATH." >&2; exit 1; }
dotnet_root=$(dirname "$dotnet_bin")

# shellcheck source=build/debian.sh
. build/debian.sh
mirror=$(debian_mirror 'bookworm|trixie')
[ -n "$mirror" ] || { echo "check-fresh.sh: no Debian mirror in this machine's apt sources." >&2; exit 1; }
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "[fresh] installing debootstrap on the host"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

root=$(mktemp -d /var/tmp/advml-fresh-XXXXXX)
log="$root.log"
cleanup() {
  local rc=$?
  for m in dev/shm dev/pts dev proc sys opt/dotnet; do
    mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m" 2>/dev/null || true
  done
  if [ "$keep" -eq 0 ]; then rm -rf "$root"; else echo "[fresh] root kept in $root"; fi
  exit $rc
}
trap cleanup EXIT

declare -a names times results
step() {  # step NAME COMMAND...: runs, times and records one step; the log keeps its output
  local name=$1; shift
  local t0=$SECONDS rc=0
  echo "[fresh] $name ..."
  "$@" >>"$log" 2>&1 || rc=$?
  names+=("$name"); times+=($((SECONDS - t0))); results+=("$rc")
  if [ "$rc" -ne 0 ]; then
    echo "[fresh] $name FAILED (exit $rc) after $((SECONDS - t0)) s; last lines of $log:"
    tail -n 25 "$log" | sed 's/^/    /'
  else
    echo "[fresh] $name passed in $((SECONDS - t0)) s"
  fi
  return "$rc"
}
# A network that inspects TLS (a proxy with its own CA, as on this project's machines) needs that CA inside the root
# too, and NuGet's certificate revocation mode if the host sets one; a user's own fresh machine needs neither.
network_env=()
[ -n "${NUGET_CERT_REVOCATION_MODE:-}" ] && network_env+=("NUGET_CERT_REVOCATION_MODE=$NUGET_CERT_REVOCATION_MODE")
in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/opt/dotnet:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  DOTNET_ROOT=/opt/dotnet DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 LANG=C.UTF-8 TERM=dumb ADVML_IN_FRESH_ROOT=1 "${network_env[@]}" /bin/bash -c "$1"; }

mount_root() {
  mount -t proc proc "$root/proc"
  mount -t sysfs sys "$root/sys"
  mount --bind /dev "$root/dev"
  mount -t devpts devpts "$root/dev/pts" -o newinstance,ptmxmode=0666 2>/dev/null || mount --bind /dev/pts "$root/dev/pts"
  mount -t tmpfs tmpfs "$root/dev/shm"   # MPICH's shared-memory transport
  mkdir -p "$root/opt/dotnet"
  mount --bind "$dotnet_root" "$root/opt/dotnet" && mount -o remount,ro,bind "$root/opt/dotnet"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
}

finish() {
  echo
  echo "| step | seconds | result |"
  echo "| --- | --- | --- |"
  for i in "${!names[@]}"; do
    echo "| ${names[$i]} | ${times[$i]} | $([ "${results[$i]}" -eq 0 ] && echo passed || echo "FAILED (exit ${results[$i]})") |"
  done
  echo "Debian $suite minimal root, commit ${commit:0:7}, profile $profile, $(nproc) cores; full log: $log"
}

local_cas() {
  local found=0 f
  for f in /usr/local/share/ca-certificates/*.crt; do
    [ -e "$f" ] || continue
    mkdir -p "$root/usr/local/share/ca-certificates" && cp "$f" "$root/usr/local/share/ca-certificates/" && found=1
  done
  if [ "$found" -eq 1 ]; then
    echo "[fresh] carrying the host's local CA certificates into the root (a TLS-inspecting network)"
    in_root "update-ca-certificates >/dev/null"
  fi
}

# The commit as a git bundle (a bundle needs a ref: a temporary one, removed at once).
bundle() {
  local ref="refs/heads/advml-check-fresh-$$"
  git -C "$repo" update-ref "$ref" "$1" && git -C "$repo" bundle create "$2" "$ref" >>"$log" 2>&1
  local rc=$?
  git -C "$repo" update-ref -d "$ref"
  return $rc
}

echo "[fresh] Debian $suite minimal root in $root from $mirror; commit ${commit:0:7}; log $log"
rc=0
{
  step debootstrap debootstrap --variant=minbase "$suite" "$root" "$mirror" &&
  mount_root &&
  step user-packages in_root "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ca-certificates git $icu libssl3 zlib1g >/dev/null" &&
  local_cas &&
  bundle "$commit" "$root/root/advml.bundle" &&
  step clone in_root "git clone -q --no-checkout /root/advml.bundle /root/advml && cd /root/advml && git checkout -q $commit" &&
  step setup in_root "cd /root/advml && bash build/setup.sh" &&
  step build in_root "cd /root/advml && dotnet build -c Release Microsoft.ML.Adversarial.sln" &&
  step main-job in_root "cd /root/advml && bash build/run.sh --profile $profile -o out" &&
  step tests in_root "cd /root/advml && bash build/test.sh --filter '$focus'" &&
  step figures-have-text in_root "cd /root/advml && python3 build/check-figures.py out"
} || rc=1
finish
exit $rc
