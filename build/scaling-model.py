#!/usr/bin/env python3
"""Scaling efficiency of synchronous data-parallel training with a bucketed, overlapped ring allreduce (docs/scale.md).

Per step a replica computes for T_c, of which the backward pass is about two thirds; its gradients (BYTES) are summed
by MPICH's large-message allreduce (reduce-scatter then allgather by recursive halving and doubling: the ring's
bandwidth term, 2 log2 N latency steps) in BUCKETS buckets:

    T_ar = 2 (N - 1) / N x BYTES / bandwidth + BUCKETS x (2 log2(N) x alpha + overhead) + T_copy

and a share f of T_ar (measured: the part of the communication that finished behind the backward pass) is hidden,
never more than the backward pass itself:  exposed = T_ar - min(f T_ar, 2/3 T_c);  efficiency = T_c / (T_c + exposed).

Usage: build/scaling-model.py [--hidden 0.75] [--overhead-ms 3] [--alpha-us 20] [--copy-ms 56] [--bytes 95.2e6] [--buckets 24]
"""
import argparse
import math

p = argparse.ArgumentParser()
p.add_argument("--hidden", type=float, default=0.75, help="measured share of the allreduce hidden behind the backward pass")
p.add_argument("--overhead-ms", type=float, default=3.0, help="measured fixed cost per bucket (hand-over, copies, test loop)")
p.add_argument("--alpha-us", type=float, default=20.0, help="latency per message step (TCP; not measurable here: no netem)")
p.add_argument("--copy-ms", type=float, default=56.0, help="measured copies into and out of the flat CPU buffer")
p.add_argument("--bytes", type=float, default=95.2e6, help="gradient bytes per step (Inception v3, fp32)")
p.add_argument("--buckets", type=int, default=24)
a = p.parse_args()

print(f"hidden share {a.hidden}, per-bucket overhead {a.overhead_ms} ms, alpha {a.alpha_us} us, copies {a.copy_ms} ms, "
      f"{a.bytes / 1e6:.1f} MB in {a.buckets} buckets")
print("| link | replicas | T_ar (ms) | exposed, T_c = 1 s (ms) | eff. T_c = 1 s | exposed, T_c = 50 ms (ms) | eff. T_c = 50 ms | eff. 50 ms, nothing hidden |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for gbit in (10, 25, 100):
    bw = gbit * 1e9 / 8
    for n in (8, 50, 200):
        t_ar = 2 * (n - 1) / n * a.bytes / bw + a.buckets * (2 * math.log2(n) * a.alpha_us * 1e-6 + a.overhead_ms * 1e-3) + a.copy_ms * 1e-3
        row = []
        for t_c in (1.0, 0.05):
            exposed = t_ar - min(a.hidden * t_ar, 2 / 3 * t_c)
            row += [f"{exposed * 1e3:.0f}", f"{t_c / (t_c + exposed):.1%}"]
        plain = 0.05 / (0.05 + t_ar)
        print(f"| {gbit} Gb/s | {n} | {t_ar * 1e3:.0f} | {row[0]} | {row[1]} | {row[2]} | {row[3]} | {plain:.1%} |")
