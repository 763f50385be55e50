#!/usr/bin/env bash
# Installs what the native side of Microsoft.ML.Adversarial needs, and nothing when it is already there.
#   1. A libstdc++ with GLIBCXX_3.4.32 (GCC 13+): TorchSharp 0.107's libLibTorchSharp.so needs it.
#      Debian 12 ships GCC 12's; we take libstdc++6 from Debian 13 (trixie), pinned low so nothing
#      else moves to trixie unless asked. NOTE: trixie's libstdc++6 needs trixie's C library, so apt also
#      upgrades libc6 2.41 with the packages tied to its version (libc-bin, and libc6-dev, locales where
#      installed), libgcc-s1, gcc-14-base and base-files 13.x from trixie; /etc/os-release then reads
#      "Debian GNU/Linux 13 (trixie)" although the rest of the system stays Debian 12 (bookworm).
#   2. Fashion-MNIST, from Debian's dataset-fashion-mnist package.
#   3. With --with-mpi: MPICH's runtime (mpirun and libmpich.so.12, packages mpich and libmpich12 without the
#      recommended libmpich-dev): distributed training (advml train --distributed) and its 2-rank tests. No -dev
#      package: the library binds MPI at run time, and libmpich-dev would pull bookworm's libc6-dev, which cannot sit
#      beside the trixie libc6 of step 1 on a minimal system ("held broken packages"). Also iproute2 (ip, tc)
#      for the two-host test's network namespaces, when missing.
#   4. With --with-pytorch: Debian's python3-torch, the reference for the PyTorch cross-checks, and an optimised BLAS
#      (libopenblas0-pthread) behind libblas.so.3: python3-torch is built against the generic BLAS interface, and on
#      Debian's reference BLAS its matrix products run ~25x slower, which makes `compare` an unfair anchor.
# Idempotent: every step checks first. Run as root (or through sudo) on Debian; elsewhere it says
# what to install by hand.
set -euo pipefail

WITH_PYTORCH=0
WITH_MPI=0
for arg in "$@"; do
  case "$arg" in
    --with-pytorch) WITH_PYTORCH=1 ;;
    --with-mpi) WITH_MPI=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (known: --with-pytorch, --with-mpi)" >&2; exit 2 ;;
  esac
done

DATA_DIR="${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
say() { echo "[setup] $*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

os_id=""; os_version=""
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  . /etc/os-release
  os_id="${ID:-}"; os_version="${VERSION_ID:-}"
fi

APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
}

find_libstdcxx() {
  for f in /lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib/x86_64-linux-gnu/libstdc++.so.6 \
           /lib/aarch64-linux-gnu/libstdc++.so.6 /usr/lib64/libstdc++.so.6 /usr/lib/libstdc++.so.6; do
    if [ -e "$f" ]; then echo "$f"; return 0; fi
  done
  return 1
}

has_glibcxx_3_4_32() {
  local lib
  lib=$(find_libstdcxx) || return 1
  grep -aq 'GLIBCXX_3\.4\.32' "$lib"
}

# debian_mirror: the mirror of the machine's own Debian sources.
# shellcheck source=build/debian.sh
. "$(dirname "${BASH_SOURCE[0]}")/debian.sh"

ensure_libstdcxx() {
  if has_glibcxx_3_4_32; then
    say "libstdc++ already provides GLIBCXX_3.4.32: nothing to do."
    return 0
  fi
  # Debian 12: os-release says 12, or (after an earlier run of this script pulled trixie's base-files) 13 while apt
  # still installs from bookworm, which is what debian_mirror looks for.
  local mirror
  mirror=$(debian_mirror)
  if [ "$os_id" = "debian" ] && { [ "$os_version" = "12" ] || [ -n "$mirror" ]; } && command -v apt-get >/dev/null 2>&1; then
    if [ -z "$mirror" ]; then
      echo "setup.sh: could not read a Debian mirror from /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list." >&2
      echo "  Install libstdc++6 (>= 13) from Debian 13 'trixie' by hand, then rerun." >&2
      exit 1
    fi
    say "libstdc++ lacks GLIBCXX_3.4.32 (TorchSharp needs GCC 13's); installing libstdc++6 from trixie via $mirror"
    say "Note: apt also upgrades libc6 (2.41, with libc-bin and, where installed, libc6-dev and locales), libgcc-s1,"
    say "  gcc-14-base and base-files (13.x) to trixie's versions, which trixie's libstdc++6 needs; /etc/os-release"
    say "  then reads Debian 13 (trixie). Everything else stays on Debian 12, trixie pinned at priority 100."
    $SUDO tee /etc/apt/sources.list.d/trixie-libstdcxx.sources >/dev/null <<SRC
Types: deb
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    $SUDO tee /etc/apt/preferences.d/trixie-low-priority >/dev/null <<PIN
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
    APT_UPDATED=0
    apt_update_once
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t trixie libstdc++6 >/dev/null
    if ! has_glibcxx_3_4_32; then
      echo "setup.sh: libstdc++6 from trixie was installed but GLIBCXX_3.4.32 is still missing." >&2
      exit 1
    fi
    say "libstdc++ now provides GLIBCXX_3.4.32."
    return 0
  fi
  cat >&2 <<MSG
setup.sh: this system's libstdc++ lacks GLIBCXX_3.4.32, which TorchSharp 0.107 needs (GCC 13 or newer).
  Supported automatically: Debian 12 (run this script as root).
  Otherwise install a libstdc++ from GCC >= 13 (Ubuntu 24.04, Debian 13 and Fedora 39+ already have one),
  for example: apt-get install libstdc++6 from a release with GCC 13, or dnf install libstdc++.
MSG
  exit 1
}

ensure_fashion_mnist() {
  if [ -e "$DATA_DIR/train-images-idx3-ubyte.gz" ] || [ -e "$DATA_DIR/train-images-idx3-ubyte" ]; then
    say "Fashion-MNIST present in $DATA_DIR."
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
    say "Installing Fashion-MNIST (Debian package dataset-fashion-mnist)."
    apt_update_once
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
    if [ -e "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz" ]; then
      say "Fashion-MNIST installed in /usr/share/datasets/fashion-mnist."
      return 0
    fi
  fi
  cat >&2 <<MSG
setup.sh: Fashion-MNIST not found in $DATA_DIR.
  On Debian: apt-get install dataset-fashion-mnist (as root).
  Elsewhere: put the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
  t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in a folder and set FASHION_MNIST_DIR to it.
MSG
  exit 1
}

has_mpich() {
  command -v mpirun >/dev/null 2>&1 || return 1
  for f in /usr/lib/x86_64-linux-gnu/libmpich.so.12 /usr/lib/aarch64-linux-gnu/libmpich.so.12 /usr/lib64/mpich/lib/libmpi.so.12 \
           /usr/lib/libmpich.so.12 /usr/local/lib/libmpi.so.12; do
    if [ -e "$f" ]; then return 0; fi
  done
  return 1
}

ensure_mpich() {
  if has_mpich; then
    say "MPICH present (mpirun and libmpich.so.12)."
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
    say "Installing MPICH's runtime (Debian packages mpich and libmpich12, without recommends) for distributed training."
    apt_update_once
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends mpich libmpich12 >/dev/null
    if has_mpich; then
      say "MPICH installed."
      return 0
    fi
  fi
  cat >&2 <<MSG
setup.sh: MPICH not found (mpirun and libmpich.so.12); distributed training and its tests need it.
  On Debian/Ubuntu: apt-get install --no-install-recommends mpich libmpich12 (as root). Fedora: dnf install mpich, then module load mpi/mpich.
  Intel MPI, Cray MPICH and MVAPICH share MPICH's ABI: set ADVML_MPI_LIBRARY to their libmpi.so.12.
MSG
  exit 1
}

# ip and tc (iproute2): the two-host test (build/two-hosts.sh) joins two network namespaces with a veth pair.
# Optional: without them, or without root, that test reports why it could not run.
ensure_iproute() {
  if command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1; then
    say "ip and tc present (two-host test)."
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
    say "Installing iproute2 (ip, tc) for the two-host test."
    apt_update_once
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends iproute2 >/dev/null || true
  fi
}

ensure_pytorch() {
  if /usr/bin/python3 -c 'import torch, torchvision' >/dev/null 2>&1; then
    say "python3-torch and python3-torchvision present."
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
    say "Installing Debian's python3-torch (reference implementation for cross-checks)."
    apt_update_once
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-torch python3-torchvision >/dev/null
    return 0
  fi
  echo "setup.sh: python3-torch not found; install it (Debian: apt-get install python3-torch python3-torchvision)." >&2
  exit 1
}

# The file libblas.so.3 resolves to (the Debian alternative), empty when there is none.
blas_library() {
  local f
  for f in /usr/lib/*-linux-gnu/libblas.so.3 /usr/lib64/libblas.so.3 /usr/lib/libblas.so.3; do
    if [ -e "$f" ]; then readlink -f "$f"; return 0; fi
  done
}

# Debian's reference (netlib) BLAS lives in .../blas/; OpenBLAS, BLIS and MKL elsewhere.
is_reference_blas() { case "$1" in ""|*/blas/libblas.so.3*) return 0 ;; *) return 1 ;; esac; }

ensure_optimised_blas() {
  local lib
  lib=$(blas_library)
  if ! is_reference_blas "$lib"; then
    say "libblas.so.3 is an optimised BLAS ($lib)."
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
    if ! dpkg -s libopenblas0-pthread >/dev/null 2>&1; then
      say "libblas.so.3 is the reference BLAS (${lib:-none}); installing OpenBLAS (libopenblas0-pthread) for python3-torch."
      apt_update_once
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenblas0-pthread >/dev/null
    fi
    lib=$(blas_library)
    if is_reference_blas "$lib"; then
      # Installed, but the alternative was pinned to the reference BLAS by hand: select OpenBLAS.
      local link dir
      for link in /usr/lib/*-linux-gnu/libblas.so.3 /usr/lib/*-linux-gnu/liblapack.so.3; do
        [ -e "$link" ] || continue
        dir=$(dirname "$link")
        if [ -e "$dir/openblas-pthread/$(basename "$link")" ]; then
          $SUDO update-alternatives --set "$(basename "$link")-$(basename "$dir")" "$dir/openblas-pthread/$(basename "$link")" >/dev/null
        fi
      done
      lib=$(blas_library)
    fi
    if ! is_reference_blas "$lib"; then
      say "libblas.so.3 now resolves to OpenBLAS ($lib)."
      return 0
    fi
  fi
  cat >&2 <<MSG
setup.sh: libblas.so.3 is the reference BLAS (${lib:-none}), so python3-torch's matrix products are ~25x slower than
  they should be and \`compare\` would report unfair ratios. On Debian: apt-get install libopenblas0-pthread (as root),
  or select an optimised one: update-alternatives --config libblas.so.3-\$(gcc -print-multiarch).
MSG
  exit 1
}

if ! command -v dotnet >/dev/null 2>&1; then
  echo "setup.sh: the .NET SDK (10.0) is not on PATH; install it from https://dot.net and rerun." >&2
  exit 1
fi

ensure_libstdcxx
ensure_fashion_mnist
if [ "$WITH_MPI" -eq 1 ]; then ensure_mpich; ensure_iproute; fi
if [ "$WITH_PYTORCH" -eq 1 ]; then ensure_pytorch; ensure_optimised_blas; fi
say "done."
