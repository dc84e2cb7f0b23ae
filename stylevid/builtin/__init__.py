"""Built-in trained models that ship in the package: `builtin:NAME` is accepted wherever a checkpoint is.

- ``builtin:synth64``: the synth64 recipe (the demo's) trained longer on the built-in synthetic
  dataset (`stylevid synth`); its training, leakage, control and frame_fd16 are in the README and in
  the checkpoint's metadata. A real model on any machine, for generation, editing and the encoder.
"""

from __future__ import annotations

from pathlib import Path

PREFIX = "builtin:"
FOLDER = Path(__file__).parent
MODELS = {"synth64": "synth64.safetensors"}


def is_builtin(network: str | Path) -> bool:
    """Whether `network` names a built-in model (builtin:NAME) rather than a file."""
    return str(network).startswith(PREFIX)


def resolve(network: str | Path) -> Path:
    """The checkpoint file of `network`: a built-in's packaged file, or the path itself."""
    if not is_builtin(network):
        return Path(network)
    name = str(network)[len(PREFIX) :]
    if name not in MODELS:
        known = ", ".join(PREFIX + n for n in MODELS)
        raise ValueError(f"unknown built-in model {str(network)!r}; the built-ins are {known}")
    path = FOLDER / MODELS[name]
    if not path.is_file():
        raise FileNotFoundError(f"the built-in model {network} should be at {path}: reinstall stylevid")
    return path
