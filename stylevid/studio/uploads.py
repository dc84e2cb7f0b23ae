"""Photos uploaded to the studio: checked (count, size, type, pixels), decoded as `stylevid invert` decodes
its references, inverted to one person's identity, and kept in memory under a random id.

Only bytes arrive from the page; a name it sends is shown in messages, never opened.
"""

from __future__ import annotations

import base64
import binascii
import io
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image

from stylevid.codes import Codes
from stylevid.encoder.align import decode_image

MAX_FILES = 8
MAX_FILE_BYTES = 8 * 2**20
MAX_PIXELS = 4096 * 4096  # decoded RGB: 48 MiB; a face photo needs far less
KEPT = 16  # identities held; the oldest is forgotten first
# What each accepted type's file starts with: a name ending .png says nothing about what a file holds.
SIGNATURES = {"PNG": b"\x89PNG\r\n\x1a\n", "JPEG": b"\xff\xd8\xff"}


class UploadError(ValueError):
    """An upload the studio refuses; its message is shown on the page."""


@dataclass(frozen=True)
class Person:
    """An uploaded person: codes [1] (identity fused over the photos) and the photos' names."""

    codes: Codes
    names: tuple[str, ...]


def clean_name(name) -> str:
    """The page's file name cut to something printable, to be shown (never opened)."""
    return "".join(c for c in str(name) if c.isprintable())[:80] or "unnamed"


def decode_upload(name: str, data: str):
    """The uint8 [H, W, 3] image of one uploaded file (base64 `data`), or an UploadError saying why not."""
    shown = repr(clean_name(name))
    if not isinstance(data, str):
        raise UploadError(f"{shown}: the upload carries no file data")
    if len(data) > 4 * (MAX_FILE_BYTES + 2) // 3:  # before decoding: base64 is 4/3 of the bytes
        raise UploadError(f"{shown} is larger than {MAX_FILE_BYTES // 2**20} MiB; use a smaller photo")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise UploadError(f"{shown}: the upload's data is not base64; upload the file again") from None
    kind = next((k for k, magic in SIGNATURES.items() if raw.startswith(magic)), None)
    if kind is None:
        raise UploadError(
            f"{shown} is not a PNG or JPEG image (its bytes do not start as one does, whatever its name);"
            " upload a photo"
        )
    try:
        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size  # the header only: nothing decoded yet
    except Exception as exc:  # any failure to parse the header is a bad upload, not a server fault
        raise UploadError(f"{shown} is a damaged {kind} ({exc}); upload another copy") from None
    if width * height > MAX_PIXELS:
        raise UploadError(
            f"{shown} is {width}x{height} pixels, more than {MAX_PIXELS // 2**20} megapixels; scale it down"
        )
    try:
        return decode_image(io.BytesIO(raw), shown)
    except ValueError as exc:
        raise UploadError(str(exc)) from None


def check_files(files) -> list[tuple[str, str]]:
    """The (name, base64 data) pairs of the page's {"files": [{"name", "data"}, ...]}, checked for count."""
    if not isinstance(files, list) or not files:
        raise UploadError("the upload holds no files; choose one or more photos of one person")
    if len(files) > MAX_FILES:
        raise UploadError(f"{len(files)} files uploaded at once; at most {MAX_FILES} photos of one person")
    if not all(isinstance(f, dict) for f in files):
        raise UploadError("each uploaded file must be an object with a name and data")
    return [(f.get("name", ""), f.get("data")) for f in files]


class People:
    """The identities uploaded in this session, by a random id (the newest KEPT)."""

    def __init__(self):
        self._people: OrderedDict[str, Person] = OrderedDict()

    def add(self, person: Person) -> str:
        key = secrets.token_urlsafe(12)
        self._people[key] = person
        while len(self._people) > KEPT:
            self._people.popitem(last=False)
        return key

    def get(self, key: str) -> Person:
        person = self._people.get(key)
        if person is None:
            raise ValueError(
                f"no uploaded photo has id {key!r} (the studio keeps the last {KEPT}, and forgets them when"
                " it restarts); upload the photos again"
            )
        return person
