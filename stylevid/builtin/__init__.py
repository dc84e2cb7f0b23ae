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
ENCODERS = {"synth64": "synth64-encoder.safetensors"}  # the encoder of each built-in model


def is_builtin(network: str | Path) -> bool:
    """Whether `network` names a built-in model (builtin:NAME) rather than a file."""
    return str(network).startswith(PREFIX)


def resolve(network: str | Path) -> Path:
    """The checkpoint file of `network`: a built-in's packaged file, or the path itself."""
    return _resolve(network, MODELS, "model")


def resolve_encoder(encoder: str | Path) -> Path:
    """The encoder checkpoint of `encoder`: builtin:NAME is the built-in model NAME's encoder."""
    return _resolve(encoder, ENCODERS, "encoder")


def _resolve(network: str | Path, files: dict[str, str], kind: str) -> Path:
    if not is_builtin(network):
        return Path(network)
    name = str(network)[len(PREFIX) :]
    if name not in files:
        known = ", ".join(PREFIX + n for n in files)
        raise ValueError(f"unknown built-in {kind} {str(network)!r}; the built-ins are {known}")
    path = FOLDER / files[name]
    if not path.is_file():
        raise FileNotFoundError(f"the built-in {kind} {network} should be at {path}: reinstall stylevid")
    return path
