#!/usr/bin/env python3
"""Exports a torchvision Inception v3 state dict, an input and its logits, to check Microsoft.ML.Adversarial's
InceptionV3 against torchvision (same parameter names, same logits).

Writes to FOLDER: state_dict.pt (torch.save(model.state_dict())), keys.txt (state-dict keys in order),
input.bin and logits.bin (raw little-endian float32), shape.json.

Usage: /usr/bin/python3 inception_reference.py FOLDER [CLASSES] [SIDE]
(Debian: apt-get install python3-torch python3-torchvision)
"""
import json
import os
import sys

import torch
import torchvision

folder = sys.argv[1]
classes = int(sys.argv[2]) if len(sys.argv) > 2 else 10
side = int(sys.argv[3]) if len(sys.argv) > 3 else 299
torch.manual_seed(0)
torch.set_num_threads(2)
model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True, num_classes=classes)
# Non-default BatchNorm parameters, so that every tensor of the state dict matters.
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.uniform_(0.8, 1.2)
            m.bias.normal_(0, 0.1)
# BatchNorm statistics from one batch (momentum 1 keeps exactly that batch's), so that eval-mode logits stay in a
# realistic range instead of growing through 94 un-normalised layers.
for m in model.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
        m.momentum = 1.0
model.train()
with torch.no_grad():
    model(torch.rand(4, 3, side, side))
model.eval()
x = torch.rand(2, 3, side, side)
with torch.no_grad():
    logits = model(x)
torch.save(model.state_dict(), os.path.join(folder, "state_dict.pt"))
with open(os.path.join(folder, "keys.txt"), "w") as f:
    f.write("\n".join(model.state_dict().keys()))
x.numpy().astype("<f4").tofile(os.path.join(folder, "input.bin"))
logits.numpy().astype("<f4").tofile(os.path.join(folder, "logits.bin"))
with open(os.path.join(folder, "shape.json"), "w") as f:
    json.dump({"input": list(x.shape), "logits": list(logits.shape), "torchvision": torchvision.__version__}, f)
print(f"torchvision {torchvision.__version__}: {sum(p.numel() for p in model.parameters())} parameters, logits {list(logits.shape)}")
