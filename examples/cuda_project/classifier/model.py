import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self, in_features=16, hidden=64, classes=4):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, classes),
        )

    def forward(self, x):
        return self.net(x)


def build_model(device="cuda"):
    # Parameters are created on the CPU, then moved to the GPU.
    model = MLP()
    if device == "cuda":
        model = model.cuda()
    else:
        model = model.to(device)
    return model
