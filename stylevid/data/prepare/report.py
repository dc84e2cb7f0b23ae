"""What `prepare` did: why a video is skipped, UnusableVideo, and the report saved beside the dataset."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from stylevid.atomic import write_atomically

REPORT_SUFFIX = ".prepare-report.json"
CORRUPT, TOO_SHORT, NO_FACE, BRIEF_FACE, ERROR = "corrupt", "too short", "no face", "face too brief", "error"
SKIP_REASONS = {
    CORRUPT: "the file cannot be decoded (damaged, truncated or not a video)",
    TOO_SHORT: "fewer than min_frames frames at the dataset's frame rate",
    NO_FACE: "MTCNN found no face in any frame",
    BRIEF_FACE: "faces were found, but no clip with a face reaches min_frames frames",
    ERROR: "an unexpected failure (the detail says which); please report it",
}


class UnusableVideo(ValueError):
    """A source video that cannot become a dataset video; `reason` is a key of SKIP_REASONS."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class PrepareReport:
    """What `prepare` did: its settings and each video prepared, resumed or skipped (with the reason)."""

    source: str
    dest: str
    path: str  # where this report is saved as JSON
    resolution: int
    fps: float
    margin: float
    min_frames: int
    seconds: float = 0.0
    prepared: list[dict] = field(default_factory=list)
    resumed: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def save(self) -> None:
        """Write the report as JSON to `path`, entries sorted by source (atomically)."""
        for entries in (self.prepared, self.resumed, self.skipped):
            entries.sort(key=lambda entry: entry["source"])
        data = {**asdict(self), "skip_reasons": SKIP_REASONS}
        write_atomically(Path(self.path), json.dumps(data, indent=1).encode())

    def summary(self, listed: int = 10) -> str:
        """A few lines for people: counts, time per video, the first `listed` skipped videos, the report."""
        clips = sum(len(entry["names"]) for entry in self.prepared)
        frames = sum(entry["frames"] for entry in self.prepared)
        done = len(self.prepared) + len(self.skipped)
        lines = [
            f"prepared {len(self.prepared)} videos ({clips} clips, {frames} frames) into {self.dest}"
            f" ({self.resolution}x{self.resolution}, {self.fps:g} fps) in {self.seconds:.1f} s"
            + (f" ({self.seconds / done:.1f} s per video)" if done else "")
        ]
        enlarged = [e for e in self.prepared if e.get("enlarged_frames")]
        if enlarged:
            lines.append(
                f"{len(enlarged)} videos have faces too small for {self.resolution}x{self.resolution}: their"
                " crops are enlarged, so blurred (a lower --resolution keeps them sharp)"
            )
            lines += [
                f"  {e['source']}: {e['enlarged_frames']} of {e['frames']} frames, mean crop side"
                f" {e['mean_crop_side']:g} px"
                for e in enlarged[:listed]
            ]
        if self.resumed:
            lines.append(f"{len(self.resumed)} videos were already in the dataset and were kept (resumed)")
        if self.skipped:
            reasons = Counter(entry["reason"] for entry in self.skipped)
            lines.append(f"skipped {len(self.skipped)}: " + ", ".join(f"{r} {n}" for r, n in reasons.items()))
            lines += [f"  {e['source']}: {e['reason']} ({e['detail']})" for e in self.skipped[:listed]]
            if len(self.skipped) > listed:
                lines.append(f"  ... and {len(self.skipped) - listed} more")
        lines.append(f"report: {self.path}")
        if Path(self.dest).suffix.lower() == ".zip":
            lines.append(
                "a .zip is complete only when a run ends: a killed run starts over (a folder resumes)"
            )
        return "\n".join(lines)
