#!/usr/bin/env bash
# Builds a Debian 13 (trixie) chroot with Debian's python3-torch 2.6, torchvision and OpenBLAS, so that the performance
# harness can compare against a current PyTorch on a Debian 12 machine:
#   sudo bash build/pytorch-trixie.sh [DIR]          # DIR defaults to /var/lib/advml/trixie (~1.5 GB)
#   dotnet run -c Release --project test/Microsoft.ML.Adversarial.PerformanceTests -- compare --python DIR/python3
# DIR/python3 is a wrapper: `DIR/python3 SCRIPT.py ARGS...` copies SCRIPT.py into the chroot's /tmp and runs it with
# the chroot's /usr/bin/python3, in a private mount namespace with /proc, /sys and /dev mounted (torch reads the CPU
# topology there); the mounts vanish with the process. Both this script and the wrapper need root.
# Idempotent: each step checks first. Not run by CI or setup.sh. Mirror: the machine's own Debian sources.
set -euo pipefail

DIR="${1:-/var/lib/advml/trixie}"
PACKAGES="python3-torch python3-torchvision libopenblas0-pthread"
say() { echo "[pytorch-trixie] $*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "pytorch-trixie.sh: run as root (debootstrap and chroot need it): sudo bash $0 $*" >&2
  exit 1
fi
# shellcheck source=build/debian.sh
. "$(dirname "${BASH_SOURCE[0]}")/debian.sh"

# Runs a command inside the chroot with /proc, /sys and /dev mounted in a private mount namespace.
in_chroot() {
  unshare --mount --propagation private -- /bin/sh -c '
    d="$1"; shift
    mount -t proc proc "$d/proc" && mount --rbind /sys "$d/sys" && mount --rbind /dev "$d/dev" && exec chroot "$d" "$@"
  ' in_chroot "$DIR" "$@"
}

if [ ! -x "$DIR/usr/bin/apt-get" ] || [ ! -e "$DIR/etc/debian_version" ]; then
  mirror=$(debian_mirror 'bookworm|trixie|forky|sid|stable|testing')
  if [ -z "$mirror" ]; then
    echo "pytorch-trixie.sh: could not read a Debian mirror from /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list." >&2
    exit 1
  fi
  if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  say "debootstrap trixie into $DIR from $mirror (a few hundred MB)"
  mkdir -p "$DIR"
  debootstrap --variant=minbase trixie "$DIR" "$mirror"
fi

if ! in_chroot /usr/bin/dpkg -s $PACKAGES >/dev/null 2>&1; then
  say "installing $PACKAGES in the chroot"
  cp /etc/resolv.conf "$DIR/etc/resolv.conf"
  in_chroot /usr/bin/apt-get update -qq
  in_chroot /usr/bin/env DEBIAN_FRONTEND=noninteractive /usr/bin/apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
  in_chroot /usr/bin/apt-get clean
fi

say "writing the wrapper $DIR/python3"
cat > "$DIR/python3.tmp" <<WRAPPER
#!/bin/sh
# Runs the Debian 13 chroot's python3 (written by build/pytorch-trixie.sh). Needs root.
# DIR/python3 SCRIPT.py ARGS... copies SCRIPT.py into the chroot's /tmp first; DIR/python3 -c CODE works as is.
set -e
root='$DIR'
if [ \$# -gt 0 ] && [ -f "\$1" ]; then
  tmp=\$(mktemp "\$root/tmp/script.XXXXXX.py")
  trap 'rm -f "\$tmp"' EXIT
  cp "\$1" "\$tmp"
  shift
  set -- "/tmp/\${tmp##*/}" "\$@"
fi
unshare --mount --propagation private -- /bin/sh -c '
  d="\$1"; shift
  mount -t proc proc "\$d/proc" && mount --rbind /sys "\$d/sys" && mount --rbind /dev "\$d/dev" && exec chroot "\$d" /usr/bin/python3 "\$@"
' python3 "\$root" "\$@"
WRAPPER
chmod 755 "$DIR/python3.tmp"
mv "$DIR/python3.tmp" "$DIR/python3"

say "check: $("$DIR/python3" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)')"
