"""Compiles the C++/CUDA extensions on first use, into a cache keyed by sources, toolchain and GPU."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch

CSRC = Path(__file__).resolve().parent / "csrc"

# Extension name -> its translation units in csrc/. Every header in csrc/ is part of every key.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "upfirdn2d": ("upfirdn2d.cpp", "upfirdn2d.cu"),
    "bias_act": ("bias_act.cpp", "bias_act.cu"),
    # The CPU twin of both kernels: the same per-element device code run in a host loop, so CI
    # can check the kernels' arithmetic without a GPU.
    "emulate": ("emulate.cpp",),
}

CXX_FLAGS = ("-O3",)
CUDA_FLAGS = ("-O3", "--use_fast_math")
DONE_MARKER = "BUILD_OK"


class BuildError(RuntimeError):
    """An extension could not be built or loaded; the message says why and what to do."""


class BuildLockTimeout(BuildError):
    """Another live process held the build lock for longer than the timeout."""


@dataclass
class Toolchain:
    """What a build needs, as found on this machine; `problems` lists what is missing and the fix."""

    cuda_home: Path | None
    nvcc: Path | None
    ninja: str | None
    cxx: str | None
    problems: list[str] = field(default_factory=list)

    def check(self, cuda: bool) -> None:
        """Raise BuildError naming every missing tool needed for a build with or without CUDA."""
        missing = [p for p in self.problems if cuda or not p.startswith("CUDA")]
        if missing:
            raise BuildError("cannot build the extension:\n  - " + "\n  - ".join(missing))


def _ninja_path() -> str | None:
    found = shutil.which("ninja")
    if found:
        return found
    # pip's ninja package lives in the environment's bin/, which is not on PATH when the venv's
    # python is run without activating the venv.
    try:
        import ninja  # noqa: PLC0415

        candidate = Path(ninja.BIN_DIR) / "ninja"
        return str(candidate) if candidate.exists() else None
    except ImportError:
        return None


def _cuda_home() -> Path | None:
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return Path(os.environ[var])
    if Path("/usr/local/cuda/bin/nvcc").exists():
        return Path("/usr/local/cuda")
    nvcc = shutil.which("nvcc")
    if nvcc:
        # A wrapper script on PATH (e.g. /usr/local/bin/nvcc) says nothing about where the
        # headers are; only a real toolkit layout (bin/nvcc next to include/) counts.
        home = Path(nvcc).resolve().parent.parent
        if (home / "include" / "cuda_runtime.h").exists():
            return home
    return None


def find_toolchain() -> Toolchain:
    """Locate the CUDA toolkit, nvcc, ninja and the C++ compiler."""
    problems = []
    cuda_home = _cuda_home()
    nvcc = None
    if cuda_home is None:
        problems.append(
            "CUDA toolkit not found: set CUDA_HOME to the toolkit folder (the one holding "
            "bin/nvcc and include/cuda_runtime.h), e.g. CUDA_HOME=/usr/local/cuda"
        )
    elif not (cuda_home / "bin" / "nvcc").exists():
        problems.append(f"CUDA toolkit at {cuda_home} has no bin/nvcc: point CUDA_HOME at a full toolkit")
    elif not (cuda_home / "include" / "cuda_runtime.h").exists():
        problems.append(
            f"CUDA toolkit at {cuda_home} has no include/cuda_runtime.h: install the CUDA headers"
        )
    else:
        nvcc = cuda_home / "bin" / "nvcc"
    ninja = _ninja_path()
    if ninja is None:
        problems.append("ninja not found: `pip install ninja` in this environment")
    cxx = shutil.which(os.environ.get("CXX", "c++"))
    if cxx is None:
        problems.append("no C++ compiler: install g++ (Debian/Ubuntu: apt install g++) or set CXX")
    return Toolchain(cuda_home, nvcc, ninja, cxx, problems)


def nvcc_version(toolchain: Toolchain) -> str | None:
    """The release line nvcc prints, or None."""
    if toolchain.nvcc is None:
        return None
    out = subprocess.run([str(toolchain.nvcc), "--version"], capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if "release" in line]
    return lines[0].strip() if lines else None


def cuda_arch_list() -> str:
    """The GPU architectures to compile for: TORCH_CUDA_ARCH_LIST, else those of the visible GPUs."""
    env = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if env:
        return env
    if torch.cuda.is_available():
        caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
        return ";".join(f"{major}.{minor}" for major, minor in caps)
    raise BuildError(
        "no GPU is visible and TORCH_CUDA_ARCH_LIST is not set: to build without a GPU, name the "
        "target, e.g. TORCH_CUDA_ARCH_LIST=9.0 (H100) or 8.0 (A100)"
    )


def cache_root() -> Path:
    """Folder holding one subfolder per built extension: STYLEVID_CACHE_DIR, else ~/.cache/stylevid."""
    if os.environ.get("STYLEVID_CACHE_DIR"):
        return Path(os.environ["STYLEVID_CACHE_DIR"]) / "ops"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "stylevid" / "ops"


def build_key(sources: list[Path], arch: str | None) -> str:
    """SHA-256 of everything that changes the binary: sources, headers, flags, torch, python, GPU arch."""
    digest = hashlib.sha256()
    headers = sorted({p for s in sources for p in s.parent.glob("*.h")})
    for path in sorted(set(sources)) + headers:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for part in (torch.__version__, str(torch.version.cuda), platform.python_version(), str(arch)):
        digest.update(part.encode() + b"\0")
    digest.update(" ".join(CXX_FLAGS + CUDA_FLAGS).encode())
    return digest.hexdigest()


@dataclass
class BuildSpec:
    """One extension to build: its name, sources, and the target architectures (None: CPU only)."""

    name: str
    sources: list[Path]
    arch: str | None
    key: str = ""

    def __post_init__(self) -> None:
        self.key = self.key or build_key(self.sources, self.arch)

    @property
    def module_name(self) -> str:
        # Unique per key, so an old and a new build can both be loaded in one process.
        return f"stylevid_{self.name}_{self.key[:12]}"

    def directory(self, root: Path) -> Path:
        return root / f"{self.name}-{self.key[:16]}"


def spec_for(name: str, arch: str | None = None) -> BuildSpec:
    """The BuildSpec of one of our EXTENSIONS; CUDA ones take `arch` or the visible GPUs'."""
    if name not in EXTENSIONS:
        raise BuildError(f"unknown extension {name!r}; known: {sorted(EXTENSIONS)}")
    sources = [CSRC / s for s in EXTENSIONS[name]]
    uses_cuda = any(s.suffix == ".cu" for s in sources)
    return BuildSpec(name, sources, (arch or cuda_arch_list()) if uses_cuda else None)


class FileLock:
    """An exclusive lock between processes, held with flock(2).

    The kernel drops a flock when its holder exits, however it exits, so a build killed halfway
    can never leave a lock that makes the next build wait forever. The file records the holder's
    pid only to name it in the timeout message.
    """

    def __init__(self, path: Path, timeout: float = 900.0, poll: float = 0.2):
        self.path, self.timeout, self.poll = Path(path), timeout, poll
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self._holder()
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise BuildLockTimeout(
                        f"build lock {self.path} is held by a live process ({holder}) for more "
                        f"than {self.timeout:.0f} s; wait for that build to finish, or stop it"
                    ) from None
                if not announced:
                    print(f"stylevid: waiting for the build lock held by {holder}", file=sys.stderr)
                    announced = True
                time.sleep(self.poll)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {platform.node()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown process"
        except OSError:
            return "unknown process"

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def _build_environment(toolchain: Toolchain, arch: str | None) -> Iterator[None]:
    """Point torch's builder at our toolchain for the duration of one build."""
    import torch.utils.cpp_extension as cpp  # noqa: PLC0415

    saved_env = dict(os.environ)
    saved_home = cpp.CUDA_HOME
    if toolchain.ninja:
        os.environ["PATH"] = str(Path(toolchain.ninja).parent) + os.pathsep + os.environ["PATH"]
    if arch:
        os.environ["TORCH_CUDA_ARCH_LIST"] = arch
    if toolchain.cuda_home:
        os.environ["CUDA_HOME"] = str(toolchain.cuda_home)
        # torch reads the toolkit location once, at import, from the nvcc on PATH; a wrapper
        # script there makes it guess a folder without headers.
        cpp.CUDA_HOME = str(toolchain.cuda_home)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        cpp.CUDA_HOME = saved_home


def _import_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BuildError(f"cannot import the built extension {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def built_library(spec: BuildSpec, root: Path | None = None) -> Path | None:
    """The finished shared library of `spec` in the cache, or None if it is not built yet."""
    folder = spec.directory(root or cache_root())
    library = folder / f"{spec.module_name}.so"
    return library if (folder / DONE_MARKER).exists() and library.exists() else None


def build(
    spec: BuildSpec,
    root: Path | None = None,
    verbose: bool = False,
    lock_timeout: float = 900.0,
) -> ModuleType:
    """Return the compiled module for `spec`, building it into the cache unless it is already there."""
    root = root or cache_root()
    library = built_library(spec, root)
    if library is not None:
        return _import_module(spec.module_name, library)
    folder = spec.directory(root)
    with FileLock(root / f"{folder.name}.lock", timeout=lock_timeout):
        library = built_library(spec, root)  # another process may have finished while we waited
        if library is not None:
            return _import_module(spec.module_name, library)
        return _compile(spec, folder, verbose)


def _compile(spec: BuildSpec, folder: Path, verbose: bool) -> ModuleType:
    toolchain = find_toolchain()
    toolchain.check(cuda=spec.arch is not None)
    import torch.utils.cpp_extension as cpp  # noqa: PLC0415

    # Build from a private copy of the sources: the key describes exactly what is compiled even
    # if the checkout changes during the build.
    src = folder / "src"
    src.mkdir(parents=True, exist_ok=True)
    for path in {*spec.sources, *spec.sources[0].parent.glob("*.h")}:
        shutil.copyfile(path, src / path.name)
    # torch's own build baton waits forever on a lock file left by a killed build; our flock
    # already makes this process the only builder of this folder, so such a file is stale.
    (folder / "lock").unlink(missing_ok=True)
    (folder / DONE_MARKER).unlink(missing_ok=True)
    started = time.monotonic()
    try:
        with _build_environment(toolchain, spec.arch):
            module = cpp.load(
                name=spec.module_name,
                sources=[str(src / p.name) for p in spec.sources],
                extra_cflags=list(CXX_FLAGS),
                extra_cuda_cflags=list(CUDA_FLAGS),
                build_directory=str(folder),
                with_cuda=spec.arch is not None,
                verbose=verbose,
            )
    except Exception as exc:  # the compiler's output is in the message; keep it whole
        raise BuildError(f"building {spec.name} in {folder} failed: {exc}") from exc
    library = folder / f"{spec.module_name}.so"
    if not library.exists():
        raise BuildError(f"building {spec.name} produced no {library.name} in {folder}")
    (folder / DONE_MARKER).write_text(f"{time.monotonic() - started:.1f} s\n")
    return module
