#!/usr/bin/env python3
"""Exports torchvision classifiers with random weights, real-image BatchNorm statistics, inputs, logits and FGSM
examples, to check that Microsoft.ML.Adversarial imports them exactly (same names, shapes, logits and attacks).

For each ARCH writes to FOLDER/ARCH: state_dict.pt (torch.save(model.state_dict())), keys.txt (state-dict keys),
input.bin (the images, ImageNet-normalised), labels.bin (int64), logits.bin (eval-mode logits), fgsm.bin (FGSM at
eps 16 of 255 against the true labels, clipped to the normalised range) and info.json. Images are Fashion-MNIST test
images (real pixels) resized to SIDE and repeated over 3 channels; BatchNorm statistics are the averages over 16 such
images (momentum None), so that eval-mode activations stay in a realistic range.

info.json is written last, so a reader may wait for it while later architectures are still being exported.

ARCH is a torchvision function name, or inception_v3_transform_input: inception_v3 with transform_input=True (what
torchvision sets for its pretrained weights).

Usage: /usr/bin/python3 torchvision_reference.py FOLDER FASHION_MNIST_FOLDER CLASSES ARCH:SIDE:BATCH [ARCH:SIDE:BATCH ...]
(Debian: apt-get install python3-torch python3-torchvision)
"""
import gzip
import json
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

warnings.filterwarnings("ignore")
folder, fashion, classes = sys.argv[1], sys.argv[2], int(sys.argv[3])
jobs = [(a, int(s), int(b)) for a, s, b in (arg.split(":") for arg in sys.argv[4:])]
torch.set_num_threads(2)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def real_images(count, offset, side):
    with gzip.open(os.path.join(fashion, "t10k-images-idx3-ubyte.gz")) as f:
        data = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(fashion, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    x = torch.from_numpy(data[offset:offset + count].astype(np.float32) / 255)
    x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False).clamp(0, 1).repeat(1, 3, 1, 1)
    return (x - MEAN) / STD, torch.from_numpy(labels[offset:offset + count].astype(np.int64)) % classes


def build(arch):
    if arch == "googlenet":
        return torchvision.models.googlenet(weights=None, num_classes=classes, aux_logits=True, init_weights=True)
    if arch in ("inception_v3", "inception_v3_transform_input"):
        return torchvision.models.inception_v3(weights=None, num_classes=classes, aux_logits=False, init_weights=True,
                                               transform_input=arch == "inception_v3_transform_input")
    return getattr(torchvision.models, arch)(weights=None, num_classes=classes)


for arch, side, batch in jobs:
    started = time.time()
    torch.manual_seed(0)
    out = os.path.join(folder, arch)
    os.makedirs(out, exist_ok=True)
    model = build(arch)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.8, 1.2)
                m.bias.normal_(0, 0.1)
                m.momentum = None
    stats, _ = real_images(16, 1000, side)
    model.train()
    with torch.no_grad():
        model(stats)
    model.eval()
    x, y = real_images(batch, 0, side)
    with torch.no_grad():
        logits = model(x)
    # FGSM, eps 16 of 255 in each channel's units, clipped to the normalised image of [0, 1].
    xg = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(xg), y)
    grad, = torch.autograd.grad(loss, xg)
    lo, hi = (0 - MEAN) / STD, (1 - MEAN) / STD
    adv = torch.max(torch.min(x + (16 / 255) / STD * grad.sign(), hi), lo).detach()
    torch.save(model.state_dict(), os.path.join(out, "state_dict.pt"))
    with open(os.path.join(out, "keys.txt"), "w") as f:
        f.write("\n".join(model.state_dict().keys()))
    x.numpy().astype("<f4").tofile(os.path.join(out, "input.bin"))
    y.numpy().astype("<i8").tofile(os.path.join(out, "labels.bin"))
    logits.numpy().astype("<f4").tofile(os.path.join(out, "logits.bin"))
    adv.numpy().astype("<f4").tofile(os.path.join(out, "fgsm.bin"))
    zero_grad = int((grad == 0).sum())
    with open(os.path.join(out, "info.json.tmp"), "w") as f:
        json.dump({"torchvision": torchvision.__version__, "input": list(x.shape), "logits": list(logits.shape),
                   "zero_gradients": zero_grad}, f)
    os.replace(os.path.join(out, "info.json.tmp"), os.path.join(out, "info.json"))
    print(f"{arch} {side}x{side}: torchvision {torchvision.__version__}, {sum(v.numel() for v in model.state_dict().values())} values, "
          f"logits {list(logits.shape)} max |logit| {logits.abs().max():.3f}, {zero_grad} zero gradients, exported in {time.time() - started:.1f} s", flush=True)
