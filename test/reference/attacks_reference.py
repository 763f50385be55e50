#!/usr/bin/env python3
"""Reference FGSM, step l.l. and basic iterative in PyTorch, for cross-checking Microsoft.ML.Adversarial.

Reads a folder written by the C# test (manifest.json + raw little-endian float32/int64 .bin files):
SmallCnn weights by parameter name, images in [0, 1], labels, epsilon (pixel units). Writes
fgsm.bin, step_ll.bin and iter_basic.bin (float32, same shape as the images) to the same folder.

Usage: /usr/bin/python3 attacks_reference.py FOLDER   (Debian: apt-get install python3-torch)
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class SmallCnn(nn.Module):
    def __init__(self, c1, c2, hidden, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc1 = nn.Linear(c2 * 7 * 7, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def load(folder, name, meta):
    dtype = np.int64 if meta["dtype"] == "int64" else np.float32
    data = np.fromfile(os.path.join(folder, name + ".bin"), dtype=dtype)
    return torch.from_numpy(data.reshape(meta["shape"]).copy())


def input_grad(model, x, target):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), target, reduction="sum")
    return torch.autograd.grad(loss, x)[0]


def main(folder):
    torch.set_num_threads(2)
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    tensors = {k: load(folder, k, v) for k, v in manifest["tensors"].items()}
    w = {k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}
    model = SmallCnn(w["conv1.weight"].shape[0], w["conv2.weight"].shape[0], w["fc1.weight"].shape[0], w["fc2.weight"].shape[0])
    model.load_state_dict(w)
    model.eval()
    x, y = tensors["images"], tensors["labels"]
    eps = manifest["epsilon"] / 255.0

    fgsm = (x + eps * input_grad(model, x, y).sign()).clamp(0, 1)

    with torch.no_grad():
        ll = model(x).argmin(1)
    step_ll = (x - eps * input_grad(model, x, ll).sign()).clamp(0, 1)

    alpha = 1.0 / 255.0
    steps = max(1, int(min(manifest["epsilon"] + 4, 1.25 * manifest["epsilon"])))
    adv = x.clone()
    for _ in range(steps):
        adv = adv + alpha * input_grad(model, adv, y).sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)

    for name, t in (("fgsm", fgsm), ("step_ll", step_ll), ("iter_basic", adv)):
        t.detach().numpy().astype(np.float32).tofile(os.path.join(folder, name + ".bin"))
    print(f"torch {torch.__version__}: wrote fgsm, step_ll, iter_basic ({steps} steps) for {x.shape[0]} images")


if __name__ == "__main__":
    main(sys.argv[1])
