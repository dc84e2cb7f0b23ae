"""benchmarks/turn_ceiling.py: at rest every frame it builds is the renderer's own; turned, the renderer's
frame still is, and the composite keeps the body and backdrop where the turned head is not."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # turn_ceiling imports face_controls by name, as when run as a script
    spec.loader.exec_module(module)
    return module


_load("face_controls")
turn_ceiling = _load("turn_ceiling")


def test_at_rest_every_frame_is_the_renderers_and_turned_the_first_still_is():
    from stylevid.data.synthetic.render import render_frame

    factors = turn_ceiling.renderer_videos(1)[0]
    frames = turn_ceiling.head_frames(
        factors, turn_ceiling.renderer_camera_layer(), (0, 30)
    )  # [2, 4, R, R, 3]
    for yaw, kinds in zip((0, 30), frames, strict=True):
        truth = render_frame(
            factors.identity, (np.radians(yaw), 0.0, 0.0), factors.lighting[0], factors.background, 64
        )
        np.testing.assert_allclose(kinds[0], truth / 255, atol=1e-6)
    # At rest the turn shows the frontal map where it was: only the antialiased edge may differ.
    at_rest = np.abs(frames[0, 1:] - frames[0, :1]).max(-1)
    assert (at_rest > 0.02).mean() < 0.02
    # Turned 30 degrees the true-depth head differs from the renderer's (the outline a frontal map cannot
    # carry), and the skin-only frame differs from the renderer's less than the whole turned head does.
    whole, skin = (np.abs(frames[1, k] - frames[1, 0]).mean() for k in (1, 3))
    assert 0 < skin < whole
