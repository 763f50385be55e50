#!/usr/bin/env python3
"""PyTorch side of the performance comparison (test/Microsoft.ML.Adversarial.PerformanceTests, `compare` mode).

Runs one workload the way Microsoft.ML.Adversarial runs it and prints one JSON line with the seconds of each timed
repetition. Same network, batch, epsilon, thread count, warm-up and repetitions as the C# side.

Usage: /usr/bin/python3 benchmark_pytorch.py WORKLOAD NETWORK BATCH WARMUP REPS THREADS
  WORKLOAD: fgsm | step-ll | iter-basic | train-step        NETWORK: smallcnn | inception
"""
import json
import sys
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


def input_grad(model, x, target):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), target, reduction="sum")
    return torch.autograd.grad(loss, x)[0]


EPS = 16 / 255.0


def fgsm(model, x, y):
    return (x + EPS * input_grad(model, x, y).sign()).clamp(0, 1)


def step_ll(model, x, y):
    with torch.no_grad():
        ll = model(x).argmin(1)
    return (x - EPS * input_grad(model, x, ll).sign()).clamp(0, 1)


def iter_basic(model, x, y):
    adv = x.clone()
    for _ in range(20):  # min(eps + 4, 1.25 eps) = 20 steps of alpha = 1 at eps 16
        adv = adv + (1 / 255.0) * input_grad(model, adv, y).sign()
        adv = torch.min(torch.max(adv, x - EPS), x + EPS).clamp(0, 1)
    return adv


def main():
    workload, network, batch, warmup, reps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if network == "smallcnn":
        model, shape, classes = SmallCnn(), (1, 28, 28), 10
    else:
        import torchvision
        model, shape, classes = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1000), (3, 299, 299), 1000
    x = torch.rand(batch, *shape)
    y = torch.randint(0, classes, (batch,))
    if workload == "train-step":
        model.train()
        opt = torch.optim.RMSprop(model.parameters(), lr=0.045, alpha=0.9, eps=1.0)
        k = batch // 2

        def run():
            model.eval()
            with torch.no_grad():
                ll = model(x[:k]).argmin(1)
            adv = (x[:k] - (8 / 255.0) * input_grad(model, x[:k], ll).sign()).clamp(0, 1)
            model.train()
            inp = torch.cat([adv, x[k:]])
            losses = F.cross_entropy(model(inp), y, reduction="none")
            loss = (losses[k:].sum() + 0.3 * losses[:k].sum()) / ((batch - k) + 0.3 * k)
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        model.eval()
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
    print(json.dumps({"torch": torch.__version__, "seconds": seconds}))


if __name__ == "__main__":
    main()
