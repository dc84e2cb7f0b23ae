"""Shape contracts at module boundaries: a wrong shape fails where it enters, naming both shapes."""

import torch


def assert_shape(x: torch.Tensor, shape: list[int | None], name: str = "tensor") -> None:
    """Raise ValueError unless x.shape matches `shape` (None matches any size)."""
    if x.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(x.shape, shape, strict=False)
    ):
        expected = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name} has shape {list(x.shape)}, expected {expected}")
