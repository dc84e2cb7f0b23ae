"""Write and read stylevid checkpoints: one .safetensors file of tensors plus JSON config and metadata.

Tensors are stored as ``"<module>.<state_dict key>"`` (``G_ema.mapping.identity.fc0.weight``); the
safetensors header metadata holds the format tag, format version, stylevid version, the config
and metadata dicts as JSON, and ``tensor_sha256``: the SHA-256 of every tensor's name, dtype, shape
and bytes in name order, checked at load so that a changed byte does not pass unnoticed (files saved
before it was recorded load unchecked). Nothing here unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from stylevid import __version__
from stylevid.atomic import write_atomically

T = TypeVar("T")

FORMAT = "stylevid-checkpoint"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt")

# safetensors itself refuses headers above 100 MB; a larger length field means a damaged file.
_MAX_HEADER_BYTES = 100_000_000
# Zip (torch.save) and pickle protocol >= 2 magic, used only to word an error message.
_PICKLE_MAGICS = (b"PK\x03\x04", b"\x80")
_MAX_LISTED = 8
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class CheckpointError(ValueError):
    """A file is not a checkpoint this stylevid can read, or tensors do not fit a module."""


STATE_SUFFIX = "-state.safetensors"  # beside each training snapshot NAME.safetensors


def refuse_training_state(path: Path, command: str) -> None:
    """Refuse a run's NAME-state.safetensors (optimizer moments, progress) by name, naming its snapshot."""
    if path.name.endswith(STATE_SUFFIX):
        snapshot = path.with_name(path.name.removesuffix(STATE_SUFFIX) + ".safetensors")
        raise CheckpointError(
            f"{path} is a training state file (optimizer moments and progress, read by {command}"
            f" --resume), not a model: pass its snapshot {snapshot}"
        )


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint; ``tensors[module][state_dict key]`` holds the weights."""

    path: Path
    format_version: int
    stylevid_version: str
    config: dict[str, Any]
    metadata: dict[str, Any]
    tensors: dict[str, dict[str, torch.Tensor]]


def save_checkpoint(
    path: str | os.PathLike,
    modules: Mapping[str, torch.nn.Module | Mapping[str, torch.Tensor]],
    config: dict[str, Any],
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Atomically write module state dicts, a JSON config and JSON metadata to one .safetensors file."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise CheckpointError(
            f"cannot save a checkpoint to {path}: stylevid checkpoints are '{SUFFIX}' files; "
            f"use {path.with_suffix(SUFFIX)}"
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot save a checkpoint to {path}: the folder {path.parent} does not exist; create it first"
        )
    tensors = _flatten(modules)
    header = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "stylevid_version": __version__,
        "config": _to_json(config, "config"),
        "metadata": _to_json({} if metadata is None else metadata, "metadata"),
        "tensor_sha256": _tensor_sha256(tensors),
    }
    write_atomically(path, save(tensors, metadata=header))
    return path


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint's versions, config, metadata, tensor hash and dtypes/shapes, not its tensor data."""
    path = _checked_path(path)
    raw = _read_raw_header(path)
    format_version, stylevid_version, config, metadata = _parse_metadata(raw.get("__metadata__"), path)
    tensor_sha256 = raw["__metadata__"].get("tensor_sha256")
    if tensor_sha256 is not None and not (
        isinstance(tensor_sha256, str) and _SHA256_HEX.fullmatch(tensor_sha256)
    ):
        raise CheckpointError(
            f"corrupt checkpoint {path}: its tensor_sha256 {tensor_sha256!r} is not a SHA-256 hex digest; "
            "the file was damaged or edited by hand: use another copy"
        )
    tensors = {}
    for key, info in raw.items():
        if key == "__metadata__":
            continue
        if not isinstance(info, dict) or "dtype" not in info or "shape" not in info:
            raise CheckpointError(f"corrupt checkpoint header in {path}: entry {key!r} has no dtype/shape")
        tensors[key] = {"dtype": info["dtype"], "shape": info["shape"]}
    return {
        "format_version": format_version,
        "stylevid_version": stylevid_version,
        "config": config,
        "metadata": metadata,
        "tensor_sha256": tensor_sha256,
        "tensors": tensors,
    }


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", verify: bool = True
) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint onto `map_location`; verify: check its tensor SHA-256."""
    header = read_header(path)
    path = Path(path)
    try:
        # pread copies into fresh memory: mmap-backed tensors would change (or fault) if the file were
        # later overwritten in place, and on Windows would block replacing it with a new snapshot.
        # The hash is taken on the CPU, so tensors move to map_location after it.
        with safe_open(path, framework="pt", device="cpu", backend="pread") as f:
            flat = {key: f.get_tensor(key) for key in f.keys()}
    except SafetensorError as e:
        raise CheckpointError(
            f"cannot read the tensors of {path}: {e}. The file is damaged or incomplete "
            "(an interrupted copy or download); use another copy of the checkpoint"
        ) from e
    expected = header["tensor_sha256"]
    if verify and expected is not None and (actual := _tensor_sha256(flat)) != expected:
        raise CheckpointError(
            f"{path} is damaged: its tensors have SHA-256 {actual}, not the {expected} recorded when it was "
            "saved, so some bytes changed on disk or in a copy. Use another copy of the checkpoint (or an "
            "earlier snapshot); load_checkpoint(path, verify=False) reads it as it is, to inspect it"
        )
    device = torch.device(map_location)
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in flat.items():
        module, _, name = key.partition(".")
        if not module or not name:
            raise CheckpointError(
                f"corrupt checkpoint {path}: tensor {key!r} is not named '<module>.<state_dict key>'"
            )
        tensors.setdefault(module, {})[name] = tensor.to(device)
    return Checkpoint(
        path=path,
        format_version=header["format_version"],
        stylevid_version=header["stylevid_version"],
        config=header["config"],
        metadata=header["metadata"],
        tensors=tensors,
    )


def read_config(ckpt: Checkpoint, key: str, parse: Callable[[Any], T]) -> T:
    """parse(ckpt.config[key]), e.g. ModelConfig.from_dict: a missing or malformed section is a
    CheckpointError naming the file and the field."""
    if key not in ckpt.config:
        raise CheckpointError(
            f"{ckpt.path} has no {key} configuration (config holds {sorted(ckpt.config)}); it was not"
            " written by stylevid's save, or for another purpose"
        )
    try:
        return parse(ckpt.config[key])
    except ValueError as exc:
        raise CheckpointError(f"{ckpt.path}: its {key} configuration is malformed: {exc}") from exc


def load_module_state(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], name: str) -> None:
    """Load `tensors` into `module` strictly; any missing, unexpected or wrong-shape key raises."""
    expected = module.state_dict()
    missing = [key for key in expected if key not in tensors]
    unexpected = [key for key in tensors if key not in expected]
    wrong_shape = [
        f"{key} ({list(tensor.shape)} in the checkpoint, {list(expected[key].shape)} in the module)"
        for key, tensor in tensors.items()
        if key in expected and tensor.shape != expected[key].shape
    ]
    problems = [
        _listing(label, keys)
        for label, keys in (
            ("missing from the checkpoint", missing),
            ("unexpected in the checkpoint", unexpected),
            ("with a different shape", wrong_shape),
        )
        if keys
    ]
    if problems:
        raise CheckpointError(
            f"checkpoint tensors for {name!r} do not fit {type(module).__name__}: {'; '.join(problems)}. "
            "The checkpoint was made for a differently configured network: build the module from the "
            "checkpoint's config"
        )
    module.load_state_dict(tensors, strict=True)


def _flatten(modules: Mapping[str, torch.nn.Module | Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Name every tensor '<module>.<key>', detached, on the CPU, contiguous and owning its storage."""
    flat = {}
    storages = set()
    for name, source in modules.items():
        if not isinstance(name, str) or not name or "." in name:
            raise CheckpointError(
                f"module name {name!r} is not usable in a checkpoint: use a non-empty str without '.', "
                "such as 'G_ema'"
            )
        state = source.state_dict() if isinstance(source, torch.nn.Module) else source
        for key, tensor in state.items():
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(
                    f"modules[{name!r}][{key!r}] is a {type(tensor).__name__}, not a tensor: "
                    "checkpoints hold tensors only; put other values in config or metadata"
                )
            tensor = tensor.detach().to("cpu").contiguous()
            # safetensors refuses tensors that share memory (tied weights, views): give each its own.
            if tensor.untyped_storage().data_ptr() in storages:
                tensor = tensor.clone()
            storages.add(tensor.untyped_storage().data_ptr())
            flat[f"{name}.{key}"] = tensor
    return flat


def module_sha256(module: torch.nn.Module) -> str:
    """SHA-256 of a module's weights and buffers (names, dtypes, shapes, bytes): which network it is,
    whatever checkpoint it was read from (an encoder names its generator by this)."""
    return _tensor_sha256(_flatten({"module": module}))


def _tensor_sha256(flat: Mapping[str, torch.Tensor]) -> str:
    """Hex SHA-256 of every contiguous CPU tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for key in sorted(flat):
        tensor = flat[key]
        digest.update(f"{key}\0{tensor.dtype}\0{list(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _to_json(value: dict[str, Any], field: str) -> str:
    """Encode a config or metadata dict as standard JSON, or say which value cannot be."""
    if not isinstance(value, dict):
        raise TypeError(f"checkpoint {field} must be a dict, got {type(value).__name__}")
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {field} is not JSON-serializable: {e}; convert it to dicts, lists, str, int, "
            "finite float, bool and None"
        ) from e


def _checked_path(path: str | os.PathLike) -> Path:
    """Refuse pickles by name, missing files and folders before any byte is read."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"refusing to load {path}: '{path.suffix}' files are Python pickles, which can execute arbitrary "
            f"code when loaded, and stylevid never unpickles them. stylevid checkpoints are '{SUFFIX}' "
            "files written by save_checkpoint (a converter for NVlabs StyleGAN2 pickles may come later)"
        )
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the file does not exist; check the path")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint: pass the '{SUFFIX}' file inside it")
    return path


def _read_raw_header(path: Path) -> dict[str, Any]:
    """Read the safetensors JSON header (8-byte little-endian length, then JSON) and nothing more."""
    with open(path, "rb") as f:
        head = f.read(8)
        size = os.fstat(f.fileno()).st_size
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < length <= min(size - 8, _MAX_HEADER_BYTES):
            raise _not_safetensors(path, head, f"its {size}-byte start is not a valid safetensors header")
        text = f.read(length)
    try:
        raw = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _not_safetensors(path, head, f"its header is not valid JSON ({e})") from e
    if not isinstance(raw, dict):
        raise _not_safetensors(path, head, "its header is not a JSON object")
    return raw


def _not_safetensors(path: Path, head: bytes, why: str) -> CheckpointError:
    hint = (
        " It looks like a PyTorch/pickle file, which stylevid never loads."
        if head.startswith(_PICKLE_MAGICS)
        else ""
    )
    return CheckpointError(
        f"{path} is not a safetensors file, or it is truncated or damaged: {why}.{hint} "
        "Use a checkpoint written by stylevid's save_checkpoint"
    )


def _parse_metadata(meta: Any, path: Path) -> tuple[int, str, dict[str, Any], dict[str, Any]]:
    """Check the format tag and version and decode config and metadata from the header metadata."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"not a stylevid checkpoint: {path} is a safetensors file made by another program "
            f'(its metadata has no "format": "{FORMAT}"); use a checkpoint written by stylevid'
        )
    stylevid_version = meta.get("stylevid_version", "unknown")
    try:
        format_version = int(meta.get("format_version", ""))
    except ValueError:
        raise CheckpointError(
            f"corrupt checkpoint {path}: format_version {meta.get('format_version')!r} is not an integer"
        ) from None
    if format_version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was made by stylevid {stylevid_version} with checkpoint format {format_version}; "
            f"this stylevid ({__version__}) reads formats up to {FORMAT_VERSION}: upgrade stylevid"
        )
    if format_version < 1:
        raise CheckpointError(f"corrupt checkpoint {path}: format_version {format_version} is below 1")
    config, metadata = (_from_json(meta.get(field), field, path) for field in ("config", "metadata"))
    return format_version, stylevid_version, config, metadata


def _from_json(text: str | None, field: str, path: Path) -> dict[str, Any]:
    try:
        value = json.loads(text) if text is not None else None
    except json.JSONDecodeError as e:
        raise CheckpointError(
            f"corrupt checkpoint {path}: its {field} is malformed JSON ({e}); the file was damaged or "
            "edited by hand: use another copy"
        ) from e
    if not isinstance(value, dict):
        raise CheckpointError(
            f"corrupt checkpoint {path}: its {field} should be a JSON object, got {type(value).__name__}"
        )
    return value


def _listing(label: str, items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return f"{len(items)} {label}: {shown}{more}"
