"""torchdevice-migrate: port CUDA-specific PyTorch code to portable code, once, at the source."""

__version__ = "0.1.0"
