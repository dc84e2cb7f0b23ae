"""stylevid: disentangled face-video GANs (identity, pose, lighting, background)."""

__version__ = "0.1.0"

from stylevid.api import VideoGenerator, load  # noqa: E402
from stylevid.codes import Codes, Trajectory  # noqa: E402
from stylevid.config import FACTORS, ModelConfig, preset  # noqa: E402
from stylevid.video import read_video, save_video  # noqa: E402

__all__ = [
    "FACTORS",
    "Codes",
    "ModelConfig",
    "Trajectory",
    "VideoGenerator",
    "__version__",
    "load",
    "preset",
    "read_video",
    "save_video",
]
