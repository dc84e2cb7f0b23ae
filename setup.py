"""Packaging for stylevid: the four code folders install under one `stylevid` namespace."""

from setuptools import find_packages, setup

# The user's layout keeps custom_ops/, training/ and metrics/ at the top of the repository;
# installed, they become stylevid.custom_ops etc. so no generic top-level name lands in
# site-packages. Subpackages are found in each folder, so a new one is never left out.
FOLDERS = {
    "stylevid": "stylevid",
    "stylevid.custom_ops": "custom_ops",
    "stylevid.training": "training",
    "stylevid.metrics": "metrics",
}

setup(
    name="stylevid",
    version="0.1.0",
    description="Disentangled face-video GANs (identity, pose, lighting, background): train, edit, evaluate.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.13",
    packages=[
        f"{name}.{sub}" if sub else name
        for name, folder in FOLDERS.items()
        for sub in ["", *find_packages(folder)]
    ],
    package_dir=FOLDERS,
    package_data={
        "stylevid.custom_ops": ["csrc/*.h", "csrc/*.cpp", "csrc/*.cu"],
        # The leakage metric's factor probes, made by `make probes`.
        "stylevid.metrics": ["probes/*.safetensors"],
        # The synthetic factor teacher of the pair losses (`make teachers`), and the built-in models.
        "stylevid.training": ["teachers/*.safetensors"],
        "stylevid": ["builtin/*.safetensors", "builtin/*.json", "studio/static/*"],
    },
    install_requires=[
        "torch>=2.11,<2.15",
        "torchvision>=0.26,<0.30",
        "ninja",
        "numpy",
        "scipy",
        "lpips",
        "facenet-pytorch==2.5.3",
        "tensorboard",
        "safetensors",
        "tqdm",
        "av",
        "matplotlib",
        "pillow",  # imported directly (image files, resizing), not only through torchvision and matplotlib
        # Read as data, never run: SFace's ONNX protobuf (onnx) and FaceMesh's TFLite flatbuffer (tflite).
        "onnx",
        "tflite",
        "flatbuffers",
    ],
    # scikit-image only for its bundled face photograph, which the prepare tests film.
    # import-linter checks the layers of DESIGN.md (`make layers`, part of `make test`).
    # onnxruntime and ai-edge-litert (the TFLite interpreter) only as independent oracles for the tests
    # of our SFace and FaceMesh modules.
    # playwright drives the system's Chromium (never a browser it downloads) in the studio's browser test.
    extras_require={
        "dev": [
            "pytest",
            "ruff",
            "scikit-image",
            "import-linter",
            "onnxruntime",
            "ai-edge-litert",
            "playwright",
        ]
    },
    entry_points={"console_scripts": ["stylevid = stylevid.cli:console"]},
)
