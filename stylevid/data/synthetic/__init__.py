"""The synthetic face-video dataset: ray-traced heads whose identity, pose, lighting and background are known.

Every frame is rendered from four factor vectors (names in FACTOR_NAMES, described in `factors`).
The parts, in the order a frame is made:

- factors: the factor names, VideoFactors, sample_factors (smooth random motion) and their checks.
- head: an identity vector as ellipsoids in head space and sRGB colours.
- trace: the camera's rays and the nearest surface along each, the head turned by the pose.
- shade: painted albedo (eyes, brows, mouth) and lighting of the surfaces hit.
- render: frames, foreground masks and landmarks (render_frame, render_video, landmarks, render_speed).
- write: synthesize, the dataset writer (video i depends only on (seed, i)); cli: `stylevid synth`.
"""

from stylevid.data.synthetic.cli import register_cli
from stylevid.data.synthetic.factors import FACTOR_NAMES, IDENTITY_NAMES, VideoFactors, sample_factors
from stylevid.data.synthetic.render import LANDMARK_NAMES, landmarks, render_frame, render_speed, render_video
from stylevid.data.synthetic.write import synthesize, video_name

__all__ = [
    "FACTOR_NAMES",
    "IDENTITY_NAMES",
    "LANDMARK_NAMES",
    "VideoFactors",
    "landmarks",
    "register_cli",
    "render_frame",
    "render_speed",
    "render_video",
    "sample_factors",
    "synthesize",
    "video_name",
]
