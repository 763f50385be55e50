#!/usr/bin/env bash
# Two "hosts" on this machine, joined by a real network link: two network namespaces, each with its own address on one
# end of a veth pair (10.77.0.1/24 and 10.77.0.2/24) and its own loopback, and an MPI job with one rank in each
# (issue 30 item 2, docs/scale.md "Two hosts over a network").
#
#   build/two-hosts.sh [--rate 10gbit|25gbit|...] [--ranks-per-host N] [--timeout S] -- PROGRAM [ARGS...]
#
# MPICH's Hydra starts the ranks: mpiexec runs in the first namespace with a host file of the two addresses and a
# stand-in for ssh (-launcher ssh -launcher-exec) that runs the proxy's command in the namespace owning the address
# (`ip netns exec NS sh -c "command"`), so no ssh is needed. -iface makes Hydra's proxies connect back over the veth
# link, and UCX (MPICH's transport here) is limited to that device, so the ranks' traffic crosses the link: the script
# prints the link's byte counters before and after ("two-hosts: link bytes ...").
# --rate shapes both ends of the link with a token bucket (tc tbf; the kernel here has no netem).
# With and without the overlapped allreduce: the PerformanceTests `overlap` mode measures both in one run, and
# `advml train --distributed` takes --no-overlap and --bucket-mb (docs/scale.md).
#
# Exit codes: the program's (mpiexec's); 77 (with "two-hosts: SKIP: reason" on stderr) when this machine cannot make
# network namespaces (not root, no `ip netns`); 124 when the job ran past --timeout. The namespaces, the link and the
# temporary files are removed on exit, whatever happens.
set -euo pipefail

rate="" per_host=1 limit=300
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) rate="$2"; shift 2 ;;
        --ranks-per-host) per_host="$2"; shift 2 ;;
        --timeout) limit="$2"; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "two-hosts: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[ $# -gt 0 ] || { echo "two-hosts: no program given: build/two-hosts.sh [options] -- PROGRAM [ARGS...]" >&2; exit 2; }

skip() { echo "two-hosts: SKIP: $*" >&2; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "network namespaces need root (this is uid $(id -u)); run as root, e.g. in CI"
command -v ip >/dev/null 2>&1 || skip "the 'ip' command (iproute2) is not installed"
command -v mpiexec >/dev/null 2>&1 || skip "mpiexec is not on the PATH (build/setup.sh --with-mpi installs MPICH)"
mpiexec -info 2>/dev/null | grep -q 'Launchers available:.*ssh' || skip "mpiexec is not MPICH's Hydra with the ssh launcher (needed for -launcher-exec)"

# Names unique to this run: other runs (and other users of this machine) may make their own pair at the same time.
ns1="advml-h1-$$" ns2="advml-h2-$$" dev="advml0" a1=10.77.0.1 a2=10.77.0.2
tmp="$(mktemp -d /tmp/advml-two-hosts.XXXXXX)"
made=()
cleanup() {
    local code=$?
    for ns in "${made[@]}"; do
        # Any process left in the namespace (a rank past the timeout) is killed before the namespace goes.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    ip link del "advml-$$-a" 2>/dev/null || true
    rm -rf "$tmp"
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns1" 2>"$tmp/err" || skip "cannot make a network namespace ($(tr '\n' ' ' <"$tmp/err")); ip netns needs root with CAP_SYS_ADMIN"
made+=("$ns1")
ip netns add "$ns2"
made+=("$ns2")
ip link add "advml-$$-a" type veth peer name "advml-$$-b"
ip link set "advml-$$-a" netns "$ns1"
ip link set "advml-$$-b" netns "$ns2"
# The same device name in both namespaces, so one UCX_NET_DEVICES and one -iface serve every rank.
ip -n "$ns1" link set "advml-$$-a" name "$dev"
ip -n "$ns2" link set "advml-$$-b" name "$dev"
ip -n "$ns1" addr add "$a1/24" dev "$dev"
ip -n "$ns2" addr add "$a2/24" dev "$dev"
for ns in "$ns1" "$ns2"; do
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "$dev" up
    if [ -n "$rate" ]; then
        # A token bucket at the line rate on each end (each direction): burst of 1 ms at that rate (at least 1 MB), queue of 10 ms.
        ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate "$rate" burst 2mb latency 10ms
    fi
done

# Hydra calls its launcher like ssh: `ssh [options] HOST command...`. This one runs the command in HOST's namespace.
cat >"$tmp/ssh" <<EOF
#!/bin/sh
while [ \$# -gt 0 ]; do case "\$1" in -*) shift ;; *) break ;; esac; done
host="\$1"; shift
case "\$host" in
    $a1) ns="$ns1" ;;
    $a2) ns="$ns2" ;;
    *) echo "two-hosts: no namespace for host '\$host'" >&2; exit 255 ;;
esac
exec ip netns exec "\$ns" sh -c "\$*"
EOF
chmod +x "$tmp/ssh"
printf '%s:%s\n%s:%s\n' "$a1" "$per_host" "$a2" "$per_host" >"$tmp/hosts"

link_bytes() { ip netns exec "$ns1" sh -c "cat /sys/class/net/$dev/statistics/tx_bytes /sys/class/net/$dev/statistics/rx_bytes" | tr '\n' ' '; }
read -r tx0 rx0 <<<"$(link_bytes)"
echo "two-hosts: $ns1 ($a1) and $ns2 ($a2) joined by veth '$dev'${rate:+, shaped to $rate each way}; $((2 * per_host)) ranks" >&2

set +e
# UCX: TCP over the link only (no shared memory between the "hosts", no other device); Hydra: control over the link.
timeout -k 10 "$limit" ip netns exec "$ns1" env UCX_TLS=tcp,self UCX_NET_DEVICES="$dev" \
    mpiexec -launcher ssh -launcher-exec "$tmp/ssh" -f "$tmp/hosts" -iface "$dev" -np $((2 * per_host)) \
    -genv UCX_TLS tcp,self -genv UCX_NET_DEVICES "$dev" "$@"
code=$?
set -e
read -r tx1 rx1 <<<"$(link_bytes)"
echo "two-hosts: link bytes $ns1 tx $((tx1 - tx0)) rx $((rx1 - rx0)) (before: tx $tx0 rx $rx0; after: tx $tx1 rx $rx1)" >&2
[ "$code" -eq 124 ] && echo "two-hosts: the job ran past $limit s and was stopped" >&2
exit "$code"
