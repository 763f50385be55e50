"""Trains a small PyTorch CNN on Fashion-MNIST and exports it to ONNX: a model this library did not make, for the
black-box tests. Usage: onnx_classifier.py DATA_FOLDER OUT.onnx [TRAIN_COUNT]. Input 'input' [N, 1, 28, 28] in [0, 1],
output 'logits' [N, 10] in Fashion-MNIST's class order. Seeded, a few seconds on 2 cores."""
import gzip, struct, sys
import numpy as np
import torch

def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)

def find(folder, stem):
    import os
    for name in (stem + "-ubyte.gz", stem + "-ubyte", stem + ".gz", stem):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise FileNotFoundError(stem)

folder, out = sys.argv[1], sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
torch.manual_seed(3)
x = torch.tensor(read_idx(find(folder, "train-images-idx3"))[:count], dtype=torch.float32).unsqueeze(1) / 255
y = torch.tensor(read_idx(find(folder, "train-labels-idx1"))[:count], dtype=torch.int64)
model = torch.nn.Sequential(
    torch.nn.Conv2d(1, 8, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(8, 16, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Flatten(), torch.nn.Linear(16 * 7 * 7, 10))
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
for epoch in range(3):
    order = torch.randperm(count)
    for start in range(0, count, 64):
        idx = order[start:start + 64]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
model.eval()
torch.onnx.export(model, torch.zeros(1, 1, 28, 28), out, input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}}, opset_version=13)
print("accuracy on its training images", (model(x).argmax(1) == y).float().mean().item())
