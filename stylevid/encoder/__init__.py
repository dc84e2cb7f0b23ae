"""The encoder: reference images or a video -> stylevid Codes, with one stable identity code.

Layout: config (EncoderConfig), backbone (per-frame feature pyramid), fusion (attention pooling over
references), model (heads, one refinement pass), trajectory (per-frame styles -> trajectory codes),
align (references cropped as prepare crops), inversion (passes, codes, optimisation), api
(VideoEncoder, load_encoder).
"""

from stylevid.encoder.align import NoFaceError
from stylevid.encoder.api import VideoEncoder, load_encoder, save_encoder
from stylevid.encoder.config import EncoderConfig
from stylevid.encoder.model import Encoder, Styles, render_styles

__all__ = [
    "Encoder",
    "EncoderConfig",
    "NoFaceError",
    "Styles",
    "VideoEncoder",
    "load_encoder",
    "render_styles",
    "save_encoder",
]
