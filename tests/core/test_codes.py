"""Codes: swap, replace, interpolation endpoints and paths, freezing, indexing, repr."""

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from device_standin import OffHostMode
from torch._subclasses.fake_tensor import FakeTensorMode

from stylevid.codes import Codes, Trajectory, slerp
from stylevid.config import FACTORS, TRAJECTORY_FACTORS


def _same(a: Codes, b: Codes) -> bool:
    return all(_equal(getattr(a, f), getattr(b, f)) for f in FACTORS)


def _equal(x, y) -> bool:
    if isinstance(x, Trajectory):
        return all(
            torch.equal(getattr(x, k), getattr(y, k)) for k in ("z", "anchors", "psi")
        ) and torch.equal(x.frozen_at.nan_to_num(-1), y.frozen_at.nan_to_num(-1))
    return torch.equal(x, y)


@pytest.fixture
def codes(video_generator):
    return video_generator.sample(4, seed=2, frames=12)


@pytest.mark.parametrize("factor", FACTORS)
def test_swap_exchanges_one_factor_only(codes, factor):
    swapped = codes.swap(factor, 0, 3)
    assert _equal(getattr(swapped[0], factor), getattr(codes[3], factor))
    assert _equal(getattr(swapped[3], factor), getattr(codes[0], factor))
    assert _equal(getattr(swapped[1], factor), getattr(codes[1], factor))
    for other in set(FACTORS) - {factor}:
        assert _equal(getattr(swapped, other), getattr(codes, other))


def test_swapped_identity_renders_the_other_face(video_generator, codes):
    """Swapping identity twice is the identity; once, the face layers follow the identity."""
    assert _same(codes.swap("identity", 0, 1).swap("identity", 0, 1), codes)
    a = video_generator.render_layers(codes.swap("identity", 0, 1), 3)
    b = video_generator.render_layers(codes.replace(identity=codes.identity[[1, 0, 2, 3]]), 3)
    assert torch.equal(a["foreground"], b["foreground"])


def test_replace_and_with_factor(codes, video_generator):
    other = video_generator.sample(4, seed=8, frames=12)
    mixed = codes.replace(background=other.background, pose=other.pose)
    assert torch.equal(mixed.background, other.background) and _equal(mixed.pose, other.pose)
    assert torch.equal(mixed.identity, codes.identity)
    broadcast = codes.with_factor("lighting", other[2])
    for i in range(4):
        assert _equal(broadcast[i].lighting, other[2].lighting)
    with pytest.raises(ValueError, match="unknown factors \\['hair'\\]"):
        codes.replace(hair=1)
    with pytest.raises(IndexError, match="index 9"):
        codes.swap("pose", 0, 9)


@pytest.mark.parametrize("factors", [FACTORS, ("identity",), ("pose", "background")])
def test_interpolation_endpoints_are_exact(codes, video_generator, factors):
    other = video_generator.sample(4, seed=11, frames=12)
    assert _same(Codes.interpolate(codes, other, 0.0, factors), codes)
    end = Codes.interpolate(codes, other, 1.0, factors)
    for f in FACTORS:
        assert _equal(getattr(end, f), getattr(other if f in factors else codes, f))


def test_interpolation_is_linear_in_w_and_spherical_for_gaussian_codes(codes, video_generator):
    other = video_generator.sample(4, seed=11, frames=12)
    mid = Codes.interpolate(codes, other, 0.5)
    torch.testing.assert_close(mid.identity, (codes.identity + other.identity) / 2)
    # slerp between two vectors of equal norm keeps that norm; lerp would shrink it.
    a = torch.tensor([[3.0, 0.0]])
    b = torch.tensor([[0.0, 3.0]])
    assert slerp(a, b, 0.5).norm().item() == pytest.approx(3.0)
    expect = slerp(codes.pose.z, other.pose.z, 0.5)
    torch.testing.assert_close(mid.pose.z, expect)
    assert not torch.allclose(mid.pose.z, (codes.pose.z + other.pose.z) / 2)


def test_slerp_of_parallel_vectors_is_linear():
    a = torch.tensor([[1.0, 2.0]])
    torch.testing.assert_close(slerp(a, 2 * a, 0.25), 1.25 * a)


def test_frozen_trajectories_give_still_frames(video_generator, codes):
    still = codes.freeze("pose", 5.0).freeze("lighting", 5.0)
    video = video_generator.render(still, torch.tensor([0.0, 3.0, 9.0]))
    assert torch.equal(video[:, 0], video[:, 1]) and torch.equal(video[:, 0], video[:, 2])
    # The still frame is the moving video's frame at time 5.
    moving = video_generator.render(codes, torch.tensor([5.0]))
    torch.testing.assert_close(video[:, 0], moving[:, 0])
    # Freezing only the pose keeps the light moving.
    light_moves = video_generator.render(codes.freeze("pose"), torch.tensor([0.0, 9.0]))
    assert not torch.equal(light_moves[:, 0], light_moves[:, 1])
    with pytest.raises(ValueError, match="cannot freeze 'identity'"):
        codes.freeze("identity")


def test_indexing_keeps_a_batch_and_matches_sampling(video_generator, codes):
    assert len(codes[1]) == 1 and len(codes[-1]) == 1 and len(codes[1:3]) == 2
    assert _same(Codes.cat([codes[0], codes[1:]]), codes)
    one = video_generator.sample_seeds([2, 5], frames=12)
    assert _same(one[1], video_generator.sample(1, seed=5, frames=12))


def test_mismatched_sizes_are_refused(codes):
    with pytest.raises(ValueError, match="same number of videos"):
        Codes(codes.identity[:2], codes.pose, codes.lighting, codes.background)


def test_edits_of_cuda_codes_stay_on_cuda():
    # Fake tensors carry a device but no values; OffHostMode refuses any op that mixes devices.
    cuda = torch.device("cuda", 0)
    with FakeTensorMode(allow_non_fake_inputs=True), OffHostMode():

        def trajectory():
            z, anchors = torch.empty(3, 8, device=cuda), torch.empty(3, 5, 4, device=cuda)
            return Trajectory(z, anchors, 4.0, torch.ones(3, device=cuda), torch.empty(3, device=cuda))

        a = Codes(torch.empty(3, 6, device=cuda), trajectory(), trajectory(), torch.empty(3, 6, device=cuda))
        edits = [
            a.swap("pose", 0, 2),
            a.with_factor("background", a[1]),
            a.freeze("lighting", 2.0),
            Codes.interpolate(a, a.swap("identity", 0, 1), 0.3),
            Codes.cat([a[0], a[1:]]),
        ]
        t = torch.empty(3, 7, device=cuda)
        for codes in edits:
            tensors = [codes.identity, codes.background]
            for name in TRAJECTORY_FACTORS:
                part = getattr(codes, name)
                tensors += [part.z, part.anchors, part.psi, part.frozen_at, part.times(t)]
            assert {x.device for x in tensors} == {cuda}


def test_repr_is_a_short_summary(codes):
    text = repr(codes)
    assert len(text) < 600 and text.count("\n") < 6, text
    for part in ("N=4", "identity [4, ", "background [4, ", "float32", "cpu", "pose=Trajectory(", "psi 1"):
        assert part in text, f"{part!r} not in {text}"
    assert "tensor(" not in text


def test_trajectory_repr_summarises_psi_and_freezing(codes):
    pose = codes.pose
    assert "moving" in repr(pose) and f"anchors [4, {pose.anchors.shape[1]}, " in repr(pose)
    mixed = Trajectory.cat([pose[:1].freeze(3.0), pose[1:]])
    assert "1 of 4 frozen" in repr(mixed)
    assert "all frozen at t=3" in repr(pose.freeze(3.0))
    truncated = Trajectory.cat([pose[:2], dataclasses.replace(pose[2:], psi=torch.full((2,), 0.5))])
    assert "psi 0.5..1" in repr(truncated)


def _tagged(n: int) -> Codes:
    """Codes of n videos whose every tensor holds its video's number, to read back which were picked."""
    tag = torch.arange(n, dtype=torch.float32)

    def trajectory():
        return Trajectory(tag[:, None].repeat(1, 2), tag[:, None, None].repeat(1, 3, 2), 16.0, tag, tag)

    return Codes(tag[:, None].repeat(1, 3), trajectory(), trajectory(), tag[:, None].repeat(1, 3))


def _picked(codes: Codes) -> list[int]:
    """The video numbers `codes` holds, the same in every tensor of every factor."""
    seen = [
        codes.identity[:, 0],
        codes.background[:, 0],
        *(t for f in TRAJECTORY_FACTORS for t in (getattr(codes, f).z[:, 0], getattr(codes, f).psi)),
        *(getattr(codes, f).anchors[:, 0, 0] for f in TRAJECTORY_FACTORS),
    ]
    assert all(torch.equal(s, seen[0]) for s in seen), seen
    return [int(v) for v in seen[0]]


@pytest.mark.parametrize("n", [0, 1, 5])
def test_indexing_and_slicing_read_as_a_list_of_the_videos(n):
    codes, oracle = _tagged(n), list(range(n))
    assert len(codes) == len(oracle)
    # Iteration stops after the last video (islice: a loop that never stops fails instead of hanging).
    assert [_picked(one) for one in itertools.islice(codes, n + 1)] == [[v] for v in oracle]
    for i in range(-n - 3, n + 3):
        if -n <= i < n:
            assert _picked(codes[i]) == [oracle[i]], i
            assert _picked(codes[np.int64(i)]) == [oracle[i]], i
            assert len(codes.pose[i]) == 1
        else:
            with pytest.raises(IndexError, match=f"video index {i} is out of range for {n} videos"):
                codes[i]
            with pytest.raises(IndexError):
                codes.lighting[i]
    bounds = [None, *range(-n - 2, n + 3)]
    for start, stop, step in itertools.product(bounds, bounds, [None, -3, -2, -1, 1, 2, 3]):
        index = slice(start, stop, step)
        assert _picked(codes[index]) == oracle[index], index
        assert len(codes.pose[index]) == len(oracle[index]), index
