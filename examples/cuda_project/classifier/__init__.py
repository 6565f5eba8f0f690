"""A tiny MLP classifier on synthetic data (the CUDA-only original)."""
