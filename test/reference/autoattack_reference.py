#!/usr/bin/env python3
"""Runs the reference AutoAttack (github.com/fra31/auto-attack) on a network written or named by the C# harness.

--network smallcnn (default): the SmallCnn whose weights the harness wrote. --network resnet18: a torchvision
ResNet-18 (10 classes) trained here, in PyTorch, on the harness's train_images/train_labels (Fashion-MNIST padded to
32 x 32 and repeated over 3 channels, pixels in [0, 1], no normalisation; Adam 1e-3, batch 128, --train-epochs, seeded),
saved as FOLDER/resnet18.pt with its eval-mode logits of the test images (FOLDER/logits.bin) for the harness to import
and compare. The attack "autoattack" is the whole 'standard' ensemble (AutoAttack.run_standard_evaluation).

Reads FOLDER (manifest.json + raw float32/int64 .bin files: SmallCnn weights by parameter name, images in [0, 1],
labels, epsilon in pixel units) and, for each attack and seed, writes robust_<attack>_<seed>.bin (one uint8 per
image: 1 when the image is classified correctly both clean and after the attack) and times.json.

The reference is imported from --autoattack DIR (a checkout of fra31/auto-attack; the harness names the commit it was
compared at). Its attacks run exactly as its 'standard' version configures them; nothing of it is changed.

Usage: /usr/bin/python3 autoattack_reference.py FOLDER --autoattack DIR --attacks apgd-ce,apgd-t,fab-t,square --seeds 0,1,2
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attacks_reference import SmallCnn, load  # noqa: E402


def make(name, model, eps, seed, n_classes):
    from autoattack.autopgd_base import APGDAttack, APGDAttack_targeted
    from autoattack.fab_pt import FABAttack_PT
    from autoattack.square import SquareAttack
    # Names ending in -l2 are the same attack in the L2 ball (AutoAttack's norm='L2', eps an L2 radius).
    if name.endswith("-l2"):
        a = make(name[:-3], model, eps, seed, n_classes)
        a.norm = "L2"
        return a
    # The 'standard' L-inf settings of AutoAttack.set_version.
    if name == "apgd-ce":
        return APGDAttack(model, n_restarts=1, n_iter=100, verbose=False, eps=eps, norm="Linf", eot_iter=1, rho=.75, seed=seed, device="cpu")
    if name == "apgd-t":
        a = APGDAttack_targeted(model, n_restarts=1, n_iter=100, verbose=False, eps=eps, norm="Linf", eot_iter=1, rho=.75, seed=seed, device="cpu")
        a.n_target_classes = min(9, n_classes - 1)
        return a
    if name == "fab-t":
        a = FABAttack_PT(model, n_restarts=1, n_iter=100, eps=eps, seed=seed, norm="Linf", verbose=False, device="cpu")
        a.targeted = True
        a.n_target_classes = min(9, n_classes - 1)
        return a
    if name == "apgd-dlr":
        return APGDAttack(model, n_restarts=1, n_iter=100, verbose=False, eps=eps, norm="Linf", eot_iter=1, rho=.75, seed=seed, device="cpu", loss="dlr")
    if name == "fab":
        a = FABAttack_PT(model, n_restarts=1, n_iter=100, eps=eps, seed=seed, norm="Linf", verbose=False, device="cpu")
        a.targeted = False
        return a
    if name == "square":
        return SquareAttack(model, p_init=.8, n_queries=5000, eps=eps, norm="Linf", n_restarts=1, seed=seed, verbose=False, device="cpu", resc_schedule=False)
    raise SystemExit(f"unknown attack {name}")


def train_resnet18(folder, tensors, epochs, seed):
    import torchvision
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=10)
    x, y = tensors["train_images"], tensors["train_labels"]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    start = time.time()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0], 128):
            idx = order[i:i + 128]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
    model.eval()
    torch.save(model.state_dict(), os.path.join(folder, "resnet18.pt"))
    with torch.no_grad():
        logits = torch.cat([model(tensors["images"][i:i + 250]) for i in range(0, tensors["images"].shape[0], 250)])
    logits.numpy().astype(np.float32).tofile(os.path.join(folder, "logits.bin"))
    print(f"trained resnet18 on {x.shape[0]} images, {epochs} epochs, in {time.time() - start:.0f} s", flush=True)
    return model


def trace(model, x, y, start, eps):
    """One APGD-CE run of the reference from the given start; the summed best loss after each iteration."""
    from autoattack.autopgd_base import APGDAttack
    attack = APGDAttack(model, n_restarts=1, n_iter=100, verbose=False, eps=eps, norm="Linf", eot_iter=1, rho=.75, seed=0, device="cpu")
    attack.init_hyperparam(x)
    best = []
    criterion = torch.nn.CrossEntropyLoss(reduction="none")
    original = attack.model

    # The reference keeps loss_best inside attack_single_run; rebuild it from the losses the model gives at each call.
    calls = {"n": 0, "best": None}

    def watched(z):
        out = original(z)
        with torch.no_grad():
            loss = criterion(out, y)
            calls["best"] = loss.clone() if calls["best"] is None else torch.maximum(calls["best"], loss)
            if calls["n"] > 0:
                best.append(float(calls["best"].sum()))
            calls["n"] += 1
        return out

    attack.model = watched
    check = attack.check_oscillation

    def checked(*args, **kwargs):
        fl = check(*args, **kwargs)
        import sys as _s
        print(f"oscillation at iteration {args[1]} (k {args[2]}): {int(fl.sum())}", file=_s.stderr)
        return fl
    attack.check_oscillation = checked
    _, acc, _, adv = attack.attack_single_run(x, y, x_init=start)
    for b in best:
        print(f"best {b:.6f}")
    with torch.no_grad():
        print(f"robust {int((original(adv).argmax(1) == y).sum())}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("--autoattack", required=True)
    p.add_argument("--attacks", default="apgd-ce")
    p.add_argument("--seeds", default="0")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--network", default="smallcnn", choices=["smallcnn", "resnet18"])
    p.add_argument("--train-epochs", type=int, default=3)
    p.add_argument("--train-seed", type=int, default=0)
    p.add_argument("--trace", action="store_true", help="APGD-CE from the folder's start.bin: print the summed best loss after each iteration")
    a = p.parse_args()
    sys.path.insert(0, a.autoattack)
    torch.set_num_threads(2)
    with open(os.path.join(a.folder, "manifest.json")) as f:
        manifest = json.load(f)
    tensors = {k: load(a.folder, k, v) for k, v in manifest["tensors"].items()}
    if a.network == "resnet18":
        model = train_resnet18(a.folder, tensors, a.train_epochs, a.train_seed)
        n_classes = 10
    else:
        w = {k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}
        model = SmallCnn(w["conv1.weight"].shape[0], w["conv2.weight"].shape[0], w["fc1.weight"].shape[0], w["fc2.weight"].shape[0])
        model.load_state_dict(w)
        model.eval()
        n_classes = int(w["fc2.weight"].shape[0])
    x, y = tensors["images"], tensors["labels"]
    eps = manifest["epsilon"] / 255.0
    if a.trace:
        trace(model, x, y, tensors["start"], eps)
        return
    with torch.no_grad():
        clean = torch.cat([model(x[i:i + 250]).argmax(1) for i in range(0, x.shape[0], 250)]) == y
    times = {}
    for name in a.attacks.split(","):
        for seed in [int(s) for s in a.seeds.split(",")]:
            attack = None if name.startswith("autoattack") else make(name, model, eps, seed, n_classes)
            start = time.time()
            robust = clean.clone()
            for i in range(0, x.shape[0], a.batch):
                xb, yb = x[i:i + a.batch], y[i:i + a.batch]
                idx = clean[i:i + a.batch].nonzero().squeeze(1)
                if idx.numel() == 0:
                    continue
                if attack is None:
                    from autoattack import AutoAttack
                    version = {"autoattack": "standard", "autoattack-l2": "standard", "autoattack-plus": "plus", "autoattack-rand": "rand"}[name]
                    ensemble = AutoAttack(model, norm="L2" if name.endswith("-l2") else "Linf", eps=eps, version=version, seed=seed, device="cpu", verbose=False)
                    adv = ensemble.run_standard_evaluation(xb[idx], yb[idx], bs=a.batch)
                else:
                    adv = attack.perturb(xb[idx], yb[idx])
                assert (adv - xb[idx]).abs().max() <= eps + 1e-5, "the reference left the epsilon ball"
                with torch.no_grad():
                    robust[i + idx] = model(adv).argmax(1) == yb[idx]
            times[f"{name}_{seed}"] = time.time() - start
            robust.numpy().astype(np.uint8).tofile(os.path.join(a.folder, f"robust_{name}_{seed}.bin"))
            print(f"reference {name} seed {seed}: {int(robust.sum())} of {x.shape[0]} robust ({int(clean.sum())} clean) in {times[f'{name}_{seed}']:.1f} s", flush=True)
    with open(os.path.join(a.folder, "times.json"), "w") as f:
        json.dump(times, f)


if __name__ == "__main__":
    main()
