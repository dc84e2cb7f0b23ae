"""Tests for stylevid.checkpoint: bit-exact round trips, atomic writes and refusals of foreign files."""

import errno
import json
import os
import pickle
import random

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import stylevid
from stylevid import checkpoint
from stylevid.atomic import staged_target
from stylevid.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_module_state,
    read_header,
    save_checkpoint,
)

CONFIG = {"resolution": 64, "channels": [512, 256], "name": "tiny", "lr": 0.0025, "ema": None, "aug": True}
METADATA = {"step": 1200, "kimg": 4.8, "notes": "ünïcode ok"}


class Tiny(torch.nn.Module):
    """Parameters and buffers of several dtypes, including one buffer that must not be saved."""

    def __init__(self, width: int = 4):
        super().__init__()
        self.fc = torch.nn.Linear(width, 3)
        self.scale16 = torch.nn.Parameter(torch.randn(2, width).half())
        self.register_buffer("stats", torch.randn(5, dtype=torch.float64))
        self.register_buffer("count", torch.tensor([7, -3], dtype=torch.int64))
        self.register_buffer("mask", torch.tensor([True, False, True]))
        self.register_buffer("scratch", torch.ones(3), persistent=False)


def _fresh(seed: int) -> Tiny:
    torch.manual_seed(seed)
    return Tiny()


def _save_tiny(path, seed: int = 0, metadata=METADATA):
    return save_checkpoint(path, {"G": _fresh(seed)}, CONFIG, metadata)


def _leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# --- round trips ---------------------------------------------------------------------------------


def test_round_trip_is_bit_exact_and_keeps_dtypes(tmp_path):
    module = _fresh(0)
    extra = {"w_avg": torch.randn(8), "labels": torch.arange(4, dtype=torch.int32)}
    path = save_checkpoint(tmp_path / "run.safetensors", {"G_ema": module, "stats": extra}, CONFIG, METADATA)

    ckpt = load_checkpoint(path)

    assert ckpt.path == path
    assert ckpt.config == CONFIG and ckpt.metadata == METADATA
    assert ckpt.format_version == checkpoint.FORMAT_VERSION
    assert ckpt.stylevid_version == stylevid.__version__
    assert set(ckpt.tensors) == {"G_ema", "stats"}
    expected = module.state_dict()
    assert "scratch" not in ckpt.tensors["G_ema"]
    assert set(ckpt.tensors["G_ema"]) == set(expected)
    for source, loaded in ((expected, ckpt.tensors["G_ema"]), (extra, ckpt.tensors["stats"])):
        for key, tensor in source.items():
            assert loaded[key].dtype == tensor.dtype, key
            assert torch.equal(loaded[key], tensor), key
    dtypes = {t.dtype for t in ckpt.tensors["G_ema"].values()}
    assert {torch.float16, torch.float64, torch.int64, torch.bool, torch.float32} <= dtypes


def test_stored_names_and_header_fields(tmp_path):
    path = _save_tiny(tmp_path / "run.safetensors")
    with safe_open(path, framework="pt") as f:
        keys, meta = set(f.keys()), f.metadata()
    assert "G.fc.weight" in keys and "G.count" in keys and "G.scratch" not in keys
    assert meta["format"] == "stylevid-checkpoint" and meta["format_version"] == "1"
    assert meta["stylevid_version"] == stylevid.__version__
    assert json.loads(meta["config"]) == CONFIG and json.loads(meta["metadata"]) == METADATA


def test_loaded_state_restores_a_fresh_module(tmp_path):
    path = _save_tiny(tmp_path / "run.safetensors", seed=1)
    target = _fresh(2)
    load_module_state(target, load_checkpoint(path).tensors["G"], "G")
    for key, tensor in _fresh(1).state_dict().items():
        assert torch.equal(target.state_dict()[key], tensor), key


def test_metadata_defaults_to_empty_and_map_location_accepts_a_device(tmp_path):
    path = _save_tiny(tmp_path / "run.safetensors", metadata=None)
    ckpt = load_checkpoint(path, map_location=torch.device("cpu"))
    assert ckpt.metadata == {}
    assert all(t.device.type == "cpu" for t in ckpt.tensors["G"].values())


def test_loaded_tensors_do_not_follow_later_writes_to_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "run.safetensors", {"m": {"x": torch.arange(100.0)}}, CONFIG)
    x = load_checkpoint(path).tensors["m"]["x"]
    with open(path, "r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(b"\0\0\0\0")
    assert x[-1].item() == 99.0


def test_tied_and_overlapping_tensors_save(tmp_path):
    a, b = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    b.weight = a.weight
    base = torch.arange(12.0)
    shared = {"base": base, "tail": base[2:], "again": base, "t": base.view(3, 4).t()}
    path = save_checkpoint(tmp_path / "tied.safetensors", {"a": a, "b": b, "shared": shared}, CONFIG)
    ckpt = load_checkpoint(path)
    assert torch.equal(ckpt.tensors["b"]["weight"], a.weight.detach())
    for key, tensor in shared.items():
        assert torch.equal(ckpt.tensors["shared"][key], tensor), key


def test_saving_detaches_and_leaves_the_module_untouched(tmp_path):
    module = _fresh(0)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    save_checkpoint(tmp_path / "run.safetensors", {"G": module}, CONFIG)
    for key, tensor in module.state_dict().items():
        assert torch.equal(tensor, before[key])
    assert module.fc.weight.requires_grad


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_saved_file_has_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = _save_tiny(tmp_path / "run.safetensors")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


# --- bad arguments to save -----------------------------------------------------------------------


def test_save_requires_the_safetensors_suffix(tmp_path):
    with pytest.raises(CheckpointError, match=r"run\.pt.*run\.safetensors"):
        _save_tiny(tmp_path / "run.pt")
    assert _leftovers(tmp_path, set()) == []


@pytest.mark.parametrize("name", ["", "G.ema", 3])
def test_save_rejects_module_names_that_would_not_round_trip(tmp_path, name):
    with pytest.raises(CheckpointError, match="module name"):
        save_checkpoint(tmp_path / "run.safetensors", {name: _fresh(0)}, CONFIG)


def test_save_rejects_non_json_config_and_non_tensors(tmp_path):
    with pytest.raises(CheckpointError, match="config is not JSON"):
        save_checkpoint(tmp_path / "run.safetensors", {"G": _fresh(0)}, {"path": tmp_path})
    with pytest.raises(CheckpointError, match="metadata is not JSON"):
        save_checkpoint(tmp_path / "run.safetensors", {"G": _fresh(0)}, CONFIG, {"loss": float("nan")})
    with pytest.raises(TypeError, match=r"modules\['opt'\]\['step'\]"):
        save_checkpoint(tmp_path / "run.safetensors", {"opt": {"step": 3}}, CONFIG)
    assert _leftovers(tmp_path, set()) == []


# --- atomicity -----------------------------------------------------------------------------------


ENOSPC = OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    "target, exc",
    [("write", ENOSPC), ("write", KeyboardInterrupt()), ("fsync", ENOSPC), ("replace", ENOSPC)],
)
def test_failed_overwrite_keeps_the_old_checkpoint_and_leaves_no_temp_file(
    tmp_path, monkeypatch, target, exc
):
    path = _save_tiny(tmp_path / "run.safetensors", seed=0)
    old_bytes = path.read_bytes()
    real_write = os.write
    temp_files_seen = []

    def fail(*args):
        if target == "write":
            # Half the bytes reach the temp file before the disk fills up (or Ctrl-C arrives).
            fd, data = args
            real_write(fd, data[: len(data) // 2])
            temp_files_seen.extend(_leftovers(tmp_path, {path.name}))
        raise exc

    monkeypatch.setattr(os, target, fail)
    with pytest.raises(type(exc)):
        _save_tiny(path, seed=1)
    monkeypatch.undo()

    if target == "write":
        assert len(temp_files_seen) == 1 and staged_target(temp_files_seen[0]) == path.name
    assert path.read_bytes() == old_bytes
    assert _leftovers(tmp_path, {path.name}) == []
    ckpt = load_checkpoint(path)
    for key, tensor in _fresh(0).state_dict().items():
        assert torch.equal(ckpt.tensors["G"][key], tensor), key


def test_successful_overwrite_replaces_the_checkpoint(tmp_path):
    path = _save_tiny(tmp_path / "run.safetensors", seed=0)
    _save_tiny(path, seed=1)
    assert torch.equal(load_checkpoint(path).tensors["G"]["fc.weight"], _fresh(1).fc.weight.detach())
    assert _leftovers(tmp_path, {path.name}) == []


# --- refusals ------------------------------------------------------------------------------------


@pytest.fixture
def no_unpickling(monkeypatch):
    """Make every unpickling entry point fail the test if it is reached."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    for owner, attr in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(owner, attr, forbidden)


@pytest.mark.parametrize("suffix", [".pt", ".pkl", ".pth", ".ckpt"])
def test_pickles_are_refused_unopened(tmp_path, suffix, no_unpickling):
    path = tmp_path / f"x{suffix}"
    torch.save({"w": torch.ones(2)}, path)
    for reader in (load_checkpoint, read_header):
        with pytest.raises(CheckpointError) as info:
            reader(path)
        message = str(info.value)
        assert "pickle" in message and "execute" in message and ".safetensors" in message
        assert str(path) in message


def test_a_pickle_renamed_to_safetensors_is_refused(tmp_path, no_unpickling):
    path = tmp_path / "x.safetensors"
    with open(path, "wb") as f:
        pickle.dump({"w": [1.0, 2.0]}, f, protocol=4)
    with pytest.raises(CheckpointError, match="not a safetensors file.*pickle"):
        load_checkpoint(path)


def test_random_bytes_are_refused(tmp_path, no_unpickling):
    path = tmp_path / "x.safetensors"
    path.write_bytes(random.Random(0).randbytes(1000))
    with pytest.raises(CheckpointError, match="not a safetensors file") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\x05\x00", b"\x10" + b"\x00" * 7 + b"[1, 2, 3, 4, 5, 6]"])
def test_empty_tiny_and_non_object_headers_are_refused(tmp_path, content):
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        read_header(path)


def test_a_checkpoint_cut_in_half_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "run.safetensors", {"G": {"w": torch.randn(4096)}}, CONFIG)
    os.truncate(path, path.stat().st_size // 2)
    with pytest.raises(CheckpointError, match="damaged or incomplete") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_a_checkpoint_cut_inside_its_header_is_refused(tmp_path):
    path = _save_tiny(tmp_path / "run.safetensors")
    os.truncate(path, 40)
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.ones(3)}, path)
    with pytest.raises(CheckpointError, match="not a stylevid checkpoint.*another program"):
        load_checkpoint(path)
    save_file({"w": torch.ones(3)}, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a stylevid checkpoint"):
        read_header(path)


def _rewrite_metadata(path, **changes):
    with safe_open(path, framework="pt") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}
        meta = f.metadata()
    save_file(tensors, path, metadata={**meta, **changes})


def test_a_newer_format_version_asks_for_an_upgrade(tmp_path):
    path = _save_tiny(tmp_path / "run.safetensors")
    _rewrite_metadata(path, format_version="2", stylevid_version="9.9.0")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "9.9.0" in message and "format 2" in message and "up to 1" in message and "upgrade" in message


@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"config": "{not json"}, "config is malformed JSON"),
        ({"metadata": '{"step": 3'}, "metadata is malformed JSON"),
        ({"config": "[1, 2]"}, "config should be a JSON object"),
        ({"format_version": "one"}, "format_version 'one' is not an integer"),
        ({"format_version": "0"}, "format_version 0 is below 1"),
    ],
)
def test_malformed_metadata_is_refused(tmp_path, changes, pattern):
    path = _save_tiny(tmp_path / "run.safetensors")
    _rewrite_metadata(path, **changes)
    with pytest.raises(CheckpointError, match=pattern):
        load_checkpoint(path)


def test_missing_file_and_folder_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.safetensors")
    folder = tmp_path / "run.safetensors"
    folder.mkdir()
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(folder)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


# --- load_module_state ---------------------------------------------------------------------------


def test_load_module_state_names_every_mismatch(tmp_path):
    module = _fresh(0)
    tensors = dict(module.state_dict())
    del tensors["stats"]
    tensors["extra.bias"] = torch.zeros(1)
    tensors["fc.weight"] = torch.zeros(3, 5)
    with pytest.raises(CheckpointError) as info:
        load_module_state(_fresh(1), tensors, "G_ema")
    message = str(info.value)
    assert "'G_ema'" in message and "Tiny" in message
    assert "missing from the checkpoint: stats" in message
    assert "unexpected in the checkpoint: extra.bias" in message
    assert "fc.weight ([3, 5] in the checkpoint, [3, 4] in the module)" in message


def test_load_module_state_leaves_the_module_alone_on_mismatch():
    target = _fresh(1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    tensors = dict(_fresh(0).state_dict())
    del tensors["count"]
    with pytest.raises(CheckpointError):
        load_module_state(target, tensors, "G")
    for key, tensor in target.state_dict().items():
        assert torch.equal(tensor, before[key]), key


def test_load_module_state_caps_long_listings():
    wide = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(50)])
    with pytest.raises(CheckpointError) as info:
        load_module_state(wide, {}, "D")
    message = str(info.value)
    assert "100 missing from the checkpoint" in message and "and 92 more" in message
    assert len(message) < 600


# --- damage to the tensor data ------------------------------------------------------------------


def _flip_a_data_byte(path, offset_from_end=100):
    data = bytearray(path.read_bytes())
    data[len(data) - offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))


def test_the_header_records_a_sha256_that_follows_every_tensor(tmp_path):
    tensors = {"w": torch.randn(3, 2), "b": torch.randn(2).bfloat16(), "step": torch.tensor(5)}

    def recorded(name, **changes):
        path = save_checkpoint(tmp_path / name, {"G": {**tensors, **changes}}, CONFIG)
        return read_header(path)["tensor_sha256"]

    first = recorded("a.safetensors")
    assert len(first) == 64 and set(first) <= set("0123456789abcdef")
    assert recorded("b.safetensors") == first
    changed = [
        recorded("c.safetensors", step=torch.tensor(6)),
        recorded("d.safetensors", w=tensors["w"].reshape(2, 3)),
        recorded("e.safetensors", b=tensors["b"].half()),
    ]
    assert first not in changed and len(set(changed)) == 3


def test_one_flipped_byte_in_the_tensor_data_is_named_damaged(tmp_path):
    path = save_checkpoint(tmp_path / "run.safetensors", {"G": {"w": torch.randn(4096)}}, CONFIG)
    _flip_a_data_byte(path)
    with pytest.raises(CheckpointError, match="damaged") as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "another copy" in message
    assert load_checkpoint(path, verify=False).tensors["G"]["w"].shape == (4096,)


def test_a_checkpoint_saved_without_a_hash_still_loads(tmp_path):
    path = _save_tiny(tmp_path / "run.safetensors")
    with safe_open(path, framework="pt") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}
        meta = f.metadata()
    del meta["tensor_sha256"]
    save_file(tensors, path, metadata=meta)
    assert torch.equal(load_checkpoint(path).tensors["G"]["fc.weight"], _fresh(0).fc.weight.detach())


def test_a_hash_that_is_not_hex_is_refused_as_corrupt(tmp_path):
    path = _save_tiny(tmp_path / "run.safetensors")
    _rewrite_metadata(path, tensor_sha256="not a hash")
    with pytest.raises(CheckpointError, match="corrupt checkpoint .*tensor_sha256 'not a hash'"):
        load_checkpoint(path)


# --- OS errors ------------------------------------------------------------------------------------


def test_an_os_error_while_saving_names_the_checkpoint(tmp_path, monkeypatch):
    def refuse(*args):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    path = tmp_path / "run.safetensors"
    with pytest.raises(PermissionError) as info:
        _save_tiny(path)
    assert info.value.errno == errno.EACCES and str(path) in str(info.value)
    assert isinstance(info.value.__cause__, PermissionError)
    assert _leftovers(tmp_path, set()) == []


# --- read_header ---------------------------------------------------------------------------------


def test_read_header_returns_config_and_shapes(tmp_path):
    path = _save_tiny(tmp_path / "run.safetensors")
    header = read_header(path)
    assert header["config"] == CONFIG and header["metadata"] == METADATA
    assert header["format_version"] == 1 and header["stylevid_version"] == stylevid.__version__
    assert header["tensors"]["G.fc.weight"] == {"dtype": "F32", "shape": [3, 4]}
    assert header["tensors"]["G.scale16"] == {"dtype": "F16", "shape": [2, 4]}
    assert "G.scratch" not in header["tensors"]


def test_read_header_does_not_read_tensor_data(tmp_path):
    path = save_checkpoint(tmp_path / "run.safetensors", {"G": {"w": torch.randn(4096)}}, CONFIG)
    header_end = 8 + int.from_bytes(path.read_bytes()[:8], "little")
    os.truncate(path, header_end)
    assert read_header(path)["config"] == CONFIG
    with pytest.raises(CheckpointError, match="damaged or incomplete"):
        load_checkpoint(path)
