#!/usr/bin/env python3
"""PyTorch side of the performance comparison (test/Microsoft.ML.Adversarial.PerformanceTests, `compare` mode).

Runs one workload the way Microsoft.ML.Adversarial runs it and prints one JSON line with the seconds of each timed
repetition and what this PyTorch runs on (version, BLAS, CPU kernels, threads). Same network, batch, epsilon, thread
count, warm-up and repetitions as the C# side.

Usage: /usr/bin/python3 benchmark_pytorch.py WORKLOAD NETWORK BATCH WARMUP REPS THREADS [--channels-last] [--autocast bf16] [--fuse]
       /usr/bin/python3 benchmark_pytorch.py --info [--threads N]      (the environment only, no workload)
  WORKLOAD: fgsm | step-ll | iter-basic | train-step        NETWORK: smallcnn | inception | resnet50
  --channels-last: model and input in torch.channels_last.
  --fuse: attacks (evaluation-mode passes) run on a copy with each BatchNorm fused into its convolution
    (torch.fx.experimental.optimization.fuse, PyTorch's own practice); the training step is left as it is.
  --autocast bf16: forward passes and losses under torch.autocast("cpu", dtype=torch.bfloat16); gradients, the
                   attack steps and the optimiser stay fp32 (fp32 master weights).
"""
import argparse
import contextlib
import ctypes
import json
import os
import re
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class SmallCnn(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


# Set by main(): the context every forward pass and loss runs in (torch.autocast for --autocast bf16).
amp = contextlib.nullcontext


def input_grad(model, x, target):
    x = x.clone().requires_grad_(True)
    with amp():
        loss = F.cross_entropy(model(x), target, reduction="sum")
    return torch.autograd.grad(loss, x)[0]


EPS = 16 / 255.0


def fgsm(model, x, y):
    return (x + EPS * input_grad(model, x, y).sign()).clamp(0, 1)


def step_ll(model, x, y):
    with torch.no_grad(), amp():
        ll = model(x).argmin(1)
    return (x - EPS * input_grad(model, x, ll).sign()).clamp(0, 1)


def iter_basic(model, x, y):
    adv = x.clone()
    for _ in range(20):  # min(eps + 4, 1.25 eps) = 20 steps of alpha = 1 at eps 16
        adv = adv + (1 / 255.0) * input_grad(model, adv, y).sign()
        adv = torch.min(torch.max(adv, x - EPS), x + EPS).clamp(0, 1)
    return adv


class _DlInfo(ctypes.Structure):
    _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p), ("sname", ctypes.c_char_p), ("saddr", ctypes.c_void_p)]


def _sgemm_library():
    """The file torch's sgemm_ calls resolve to: dlsym from libtorch_cpu's scope, then dladdr. None if not found."""
    with open("/proc/self/maps") as maps:
        torch_cpu = next((path for path in (line.split()[-1] for line in maps) if os.path.basename(path).startswith("libtorch_cpu.so")), None)
    if torch_cpu is None:
        return None
    try:
        address = ctypes.cast(ctypes.CDLL(torch_cpu).sgemm_, ctypes.c_void_p).value
    except AttributeError:
        return None
    info = _DlInfo()
    if not ctypes.CDLL(None).dladdr(ctypes.c_void_p(address), ctypes.byref(info)) or not info.fname:
        return None
    return os.path.realpath(info.fname.decode())


def blas():
    """The BLAS torch's matrix products run on: BLAS_INFO of the build and the library its sgemm_ really resolves to
    in this process (for Debian's builds against the generic BLAS interface, whatever libblas.so.3 points at)."""
    info = (re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show()) or [None, "unknown"])[1]
    torch.rand(64, 64) @ torch.rand(64, 64)
    library = _sgemm_library()
    name, reference = info, False
    if library is not None:
        lib = ctypes.CDLL(library)
        if hasattr(lib, "openblas_get_config"):
            lib.openblas_get_config.restype = ctypes.c_char_p
            name = lib.openblas_get_config().decode().strip()
            if not name.startswith("OpenBLAS"):
                name = "OpenBLAS " + name
        elif hasattr(lib, "bli_info_get_version_str"):
            lib.bli_info_get_version_str.restype = ctypes.c_char_p
            name = "BLIS " + lib.bli_info_get_version_str().decode()
        elif hasattr(lib, "MKL_Get_Version_String"):
            name = "MKL"
        elif os.path.basename(library).startswith("libblas.so"):
            # Debian's libblas3 (netlib): plain loops, ~25x slower than an optimised BLAS on a 2048x2048 GEMM.
            name, reference = "reference BLAS (netlib)", True
    return {"info": info, "name": name, "library": library, "reference": reference}


def cpu_capability():
    cpu = getattr(torch.backends, "cpu", None)
    if cpu is not None and hasattr(cpu, "get_cpu_capability"):
        return cpu.get_cpu_capability()
    found = re.search(r"CPU capability usage: (\S+)", torch.__config__.show())
    return found[1] if found else "unknown"


def environment():
    return {"torch": torch.__version__, "blas": blas(), "cpu_capability": cpu_capability(),
            "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads()}


def main():
    global amp
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", nargs="?", choices=["fgsm", "step-ll", "iter-basic", "train-step"])
    parser.add_argument("network", nargs="?", choices=["smallcnn", "inception", "resnet50"])
    for name in ["batch", "warmup", "reps", "threads"]:
        parser.add_argument(name, nargs="?", type=int)
    parser.add_argument("--channels-last", action="store_true", help="model and input in torch.channels_last")
    parser.add_argument("--autocast", choices=["bf16"], help="forward passes under torch.autocast(cpu, bfloat16)")
    parser.add_argument("--fuse", action="store_true", help="attacks on a copy with BatchNorm fused into the convolutions (torch.fx)")
    parser.add_argument("--info", action="store_true", help="print the environment (torch, BLAS, CPU capability) and exit")
    parser.add_argument("--threads", dest="info_threads", type=int, help="threads for --info")
    args = parser.parse_args()
    if args.info:
        if args.info_threads:
            torch.set_num_threads(args.info_threads)
        print(json.dumps(environment()))
        return
    if args.threads is None:
        parser.error("WORKLOAD NETWORK BATCH WARMUP REPS THREADS are required (or --info)")
    workload, network, batch, warmup, reps, threads = args.workload, args.network, args.batch, args.warmup, args.reps, args.threads
    torch.set_num_threads(threads)
    if args.autocast == "bf16":
        amp = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    torch.manual_seed(0)
    if network == "smallcnn":
        model, shape, classes = SmallCnn(), (1, 28, 28), 10
    elif network == "resnet50":
        import torchvision
        model, shape, classes = torchvision.models.resnet50(weights=None, num_classes=1000), (3, 224, 224), 1000
    else:
        import torchvision
        model, shape, classes = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1000), (3, 299, 299), 1000
    x = torch.rand(batch, *shape)
    y = torch.randint(0, classes, (batch,))
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if workload == "train-step":
        model.train()
        opt = torch.optim.RMSprop(model.parameters(), lr=0.045, alpha=0.9, eps=1.0)
        k = batch // 2

        def run():
            model.eval()
            with torch.no_grad(), amp():
                ll = model(x[:k]).argmin(1)
            adv = (x[:k] - (8 / 255.0) * input_grad(model, x[:k], ll).sign()).clamp(0, 1)
            model.train()
            inp = torch.cat([adv, x[k:]])
            with amp():
                losses = F.cross_entropy(model(inp), y, reduction="none")
            loss = (losses[k:].float().sum() + 0.3 * losses[:k].float().sum()) / ((batch - k) + 0.3 * k)
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        model.eval()
        if args.fuse:
            from torch.fx.experimental.optimization import fuse
            model = fuse(model)  # traces the eval-mode network; conv + BatchNorm become one convolution
            if args.channels_last:
                model = model.to(memory_format=torch.channels_last)
        attack = {"fgsm": fgsm, "step-ll": step_ll, "iter-basic": iter_basic}[workload]

        def run():
            attack(model, x, y)
    for _ in range(warmup):
        run()
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    print(json.dumps({**environment(), "channels_last": args.channels_last, "autocast": args.autocast, "fuse": args.fuse, "seconds": seconds}))


if __name__ == "__main__":
    main()
