"""Train the classifier on one GPU.

Usage: python train.py --epochs 5
"""
import argparse
import os

import torch
import torch.nn.functional as F

from classifier.data import batches, make_dataset
from classifier.model import build_model


def parse_args():
    parser = argparse.ArgumentParser(description="Train a tiny classifier on CUDA.")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--device", default="cuda", help="device to train on, e.g. cuda:0")
    parser.add_argument("--checkpoint", default="checkpoint.pt")
    return parser.parse_args()


def main():
    args = parse_args()
    assert torch.cuda.is_available(), "this script needs a GPU"
    torch.cuda.set_device(0)
    print(f"GPUs visible: {torch.cuda.device_count()}, current: {torch.cuda.current_device()}")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(args.device)
    x, y = make_dataset(device=device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)

    for epoch in range(args.epochs):
        total = 0.0
        for xb, yb in batches(x, y):
            xb = xb.cuda(non_blocking=True)
            yb = yb.to("cuda")
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * xb.shape[0]
        print(f"epoch {epoch} loss {total / x.shape[0]:.4f}")

    # the 'cuda_rng_state' key is only a name, not a device
    torch.save({"model": model.state_dict(), "cuda_rng_state": None}, args.checkpoint)
    state = torch.load(args.checkpoint, map_location="cuda:0")
    model.load_state_dict(state["model"])
    print("checkpoint reloaded on", next(model.parameters()).device.type)
    if os.path.exists(args.checkpoint):
        os.remove(args.checkpoint)


if __name__ == "__main__":
    main()
