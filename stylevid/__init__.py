"""stylevid: disentangled face-video GANs (identity, pose, lighting, background)."""

__version__ = "0.1.0"

from stylevid.api import VideoGenerator, load  # noqa: E402
from stylevid.codes import Codes, Trajectory  # noqa: E402
from stylevid.codes_file import load_codes, save_codes  # noqa: E402
from stylevid.config import FACTORS, ModelConfig, preset  # noqa: E402
from stylevid.encoder import VideoEncoder, load_encoder  # noqa: E402
from stylevid.video import read_video, save_video  # noqa: E402

__all__ = [
    "FACTORS",
    "Codes",
    "ModelConfig",
    "Trajectory",
    "VideoEncoder",
    "VideoGenerator",
    "__version__",
    "load",
    "load_codes",
    "load_encoder",
    "preset",
    "read_video",
    "save_codes",
    "save_video",
]
