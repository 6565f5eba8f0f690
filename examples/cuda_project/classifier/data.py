import torch


def make_dataset(n=512, in_features=16, classes=4, seed=0, device="cuda"):
    """Synthetic, linearly separable data generated directly on the GPU."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    centers = torch.randn(classes, in_features, generator=g, device="cuda") * 3
    labels = torch.randint(0, classes, (n,), generator=g, device=device)
    x = centers[labels] + torch.randn(n, in_features, generator=g, device=torch.device("cuda"))
    return x, labels


def batches(x, y, batch_size=64):
    for i in range(0, x.shape[0], batch_size):
        yield x[i:i + batch_size], y[i:i + batch_size]
