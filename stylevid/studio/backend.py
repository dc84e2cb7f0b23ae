"""The studio's work behind the routes: a loaded generator turned into frames, clips, codes files, code
snippets, uploaded identities and the leakage heatmap. Every method runs on the worker thread (see
worker.py), so the generator, the sample cache and the uploaded people are never shared between threads.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

from stylevid import builtin
from stylevid.codes import Codes
from stylevid.config import FACTORS
from stylevid.studio import export, uploads
from stylevid.studio.heatmap import find_leakage, leakage_png, leakage_summary
from stylevid.studio.snippet import view_snippet
from stylevid.studio.view import GRID_SIZES, PSI_RANGE, SETTERS, View, build_codes, parse_view, shows_upload

SAMPLES_KEPT = 512  # (seed, psi) codes cached: sampling is cheap, but a dragged seed slider asks often
EXPORTS = ("png", "mp4", "gif", "codes", "python")


def check_controls(controls: Mapping) -> dict[str, dict]:
    """The generator's physical settings {name: {factor, low, high, unit, default}}, checked."""
    checked = {}
    for name, spec in controls.items():
        try:
            factor, low, high = spec["factor"], float(spec["low"]), float(spec["high"])
            default = float(spec.get("default", low))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the generator's control {name!r} is {spec!r}: {exc}") from None
        if factor not in SETTERS or not low < high or not low <= default <= high:
            raise ValueError(
                f"the generator's control {name!r} is {spec!r}; expected factor one of {', '.join(SETTERS)}"
                " and low < high with the default between"
            )
        checked[name] = {
            "factor": factor,
            "low": low,
            "high": high,
            "unit": str(spec.get("unit", "")),
            "default": default,
        }
    return checked


class Studio:
    """A generator as the studio shows it: views of `frames` frames played at `fps`."""

    def __init__(self, gen, network: str, frames: int = 64, fps: float = 25.0):
        self.gen, self.network, self.frames, self.fps = gen, str(network), frames, fps
        # The face layer's sliders (yaw, azimuth, ...) where the generator has them.
        self.controls = check_controls(getattr(gen, "controls", None) or {})
        self.people = uploads.People()
        self._samples: OrderedDict[tuple[int, float], Codes] = OrderedDict()
        checkpoint = None if builtin.is_builtin(network) else Path(network)
        self.leakage, self.leakage_source = find_leakage(gen.metadata, checkpoint)
        self._leakage_png: bytes | None = None

    def info(self) -> dict:
        """What the page builds its controls from."""
        return {
            "network": self.network,
            "resolution": self.gen.resolution,
            "frames": self.frames,
            "fps": self.fps,
            "factors": list(FACTORS),
            "psi_range": list(PSI_RANGE),
            "grid_sizes": [GRID_SIZES.start, GRID_SIZES.stop - 1],
            "controls": self.controls,
            "leakage": leakage_summary(self.leakage, self.leakage_source),
            "upload_limits": {
                "files": uploads.MAX_FILES,
                "bytes": uploads.MAX_FILE_BYTES,
                "types": sorted(uploads.SIGNATURES),
            },
            "exports": list(EXPORTS),
        }

    def parse(self, data) -> View:
        return parse_view(data, self.frames, self.controls)

    def _factor_codes(self, factor: str, seed: int, psi: float) -> Codes:
        """gen.sample(1, seed, frames, psi), cached: its `factor` is the factor's code for (seed, psi)."""
        key = (seed, psi)
        codes = self._samples.pop(key, None)
        if codes is None:
            codes = self.gen.sample(1, seed=seed, frames=self.frames, psi=psi)
        self._samples[key] = codes
        while len(self._samples) > SAMPLES_KEPT:
            self._samples.popitem(last=False)
        return codes

    def codes(self, view: View) -> Codes:
        """Codes [N] of the view (1, or n * n for a grid)."""
        person = self.people.get(view.upload).codes if shows_upload(view) else None
        return build_codes(view, self._factor_codes, person, self.controls)

    def _nrow(self, view: View) -> int:
        return 1 if view.grid is None else view.grid.n

    def frame(self, view: View) -> bytes:
        """PNG of the view at its time t: one frame, or the grid of frames."""
        frames = self.gen.render(self.codes(view), [view.t])[:, 0]
        return export.frame_png(frames, self._nrow(view))

    def export(self, view: View, kind: str) -> tuple[bytes, str, str]:
        """(bytes, content type, file name) of the view as `kind`, one of EXPORTS."""
        if kind == "png":  # as the page shows it, compressed harder
            frames = self.gen.render(self.codes(view), [view.t])[:, 0]
            return (
                export.frame_png(frames, self._nrow(view), compress_level=6),
                "image/png",
                "stylevid-frame.png",
            )
        if kind in export.CLIP_TYPES:
            chunks = self.gen.frames(self.codes(view), self.frames)
            data = export.clip_bytes(chunks, kind, self.fps, self._nrow(view))
            return data, export.CLIP_TYPES[kind], f"stylevid-clip.{kind}"
        if kind == "codes":
            metadata = {
                "network": self.network,
                "generator_sha256": self.gen.sha256,
                "studio_view": _plain(view),
            }
            data = export.codes_bytes(self.codes(view), metadata)
            return data, "application/octet-stream", "stylevid-codes.safetensors"
        if kind == "python":
            photos = self.people.get(view.upload).names if shows_upload(view) else ()
            text = view_snippet(view, self.network, self.frames, self.fps, self.controls, photos)
            return text.encode(), "text/x-python; charset=utf-8", "stylevid_view.py"
        raise ValueError(f"unknown export {kind!r}; the studio exports {', '.join(EXPORTS)}")

    def upload(self, files) -> dict:
        """Invert uploaded photos of one person (as `stylevid invert --images` does) to an identity."""
        decoded = [(name, uploads.decode_upload(name, data)) for name, data in uploads.check_files(files)]
        names = tuple(uploads.clean_name(name) for name, _ in decoded)
        try:
            codes = self.gen.invert(images=[image for _, image in decoded])
        except ValueError as exc:  # no face found, no encoder for this network: the page shows why
            raise uploads.UploadError(f"{', '.join(names)}: {exc}") from None
        key = self.people.add(uploads.Person(codes[:1], names))
        return {"upload": key, "names": list(names), "message": f"identity of {', '.join(names)}"}

    def leakage_image(self) -> bytes | None:
        """The leakage heatmap PNG, or None where the network's leakage was never measured."""
        if self.leakage is None:
            return None
        if self._leakage_png is None:
            self._leakage_png = leakage_png(self.leakage, f"{self.network}: leakage")
        return self._leakage_png


def _plain(view: View) -> dict:
    """The view as JSON (a codes file's metadata): what the page sent, checked."""
    grid = None if view.grid is None else vars(view.grid)
    return {**vars(view), "grid": grid}
