"""Real face videos prepared as a stylevid dataset: find the face, follow it smoothly, crop, resize, write.

Each .mp4/.avi/.mov/.mkv file under the source folder (hidden files and folders left out) goes through:

1. Decoding with PyAV at the dataset's frame rate (frames repeated or dropped by their timestamps).
2. Face detection with MTCNN (stylevid.data.faces) on a copy whose longest side is at most DETECT_SIDE
   pixels. Of several faces the one overlapping the face kept in earlier frames is kept (IoU >=
   TRACK_IOU), else the largest.
3. Clips: frames with a face, across gaps of up to MAX_GAP_SECONDS (the box there is interpolated from its
   neighbours). A longer gap (the person left, a scene cut) ends a clip; frames before the first and after
   the last detection are left out; clips shorter than `min_frames` are dropped. One clip keeps the
   video's name, several are `name.clip1`, `name.clip2`, ... (sanitised names never hold a '.').
4. A square crop per frame: side = `margin` x the face box's longer side, centre LIFT x the box height
   above the box centre; margin 1.5 frames the face as FFHQ does, hair to chin (faces.face_square).
   Centre and side are smoothed over time with a quadratic Savitzky-Golay filter of SMOOTH_SECONDS:
   detector jitter goes, while steady motion is followed without the lag of a moving average.
5. Where a crop leaves the frame the frame is extended by reflection, as FFHQ does (faces.crop_face).
   The report counts such `padded_frames`.
6. Lanczos resizing (antialiased) to resolution², written with DatasetWriter (folder or .zip). A crop
   smaller than resolution² is enlarged, which blurs: the report counts such `enlarged_frames` and its
   summary names the videos (a face ~60 px tall gives ~90 px crops: fine at 64², blurred at 256²).

A video that cannot be used is skipped with a reason (SKIP_REASONS), never stopping the run. The report
goes beside the dataset, `<dest>.prepare-report.json` (inside it, a dataset folder would list it as a
stray file). Running again resumes: videos already in the dataset are not redone and skipped ones are
tried again. A folder resumes even after a kill; a .zip is only complete once a run ends, so a killed
run into a .zip starts over.

The parts: sources (finding and naming the videos), decode (frames at the dataset's rate), track (the
face followed, clips, smoothed crops; detection and the crop are stylevid.data.faces), jobs (one video
prepared, many on worker processes), report (skip reasons and the JSON report), write (`prepare`), cli.
"""

from stylevid.data.prepare.cli import register_cli
from stylevid.data.prepare.report import (
    BRIEF_FACE,
    CORRUPT,
    ERROR,
    NO_FACE,
    REPORT_SUFFIX,
    SKIP_REASONS,
    TOO_SHORT,
    PrepareReport,
    UnusableVideo,
)
from stylevid.data.prepare.sources import SOURCE_SUFFIXES, clip_names, find_videos, video_names
from stylevid.data.prepare.track import FaceTrack, track_faces
from stylevid.data.prepare.write import prepare

__all__ = [
    "BRIEF_FACE",
    "CORRUPT",
    "ERROR",
    "NO_FACE",
    "REPORT_SUFFIX",
    "SKIP_REASONS",
    "SOURCE_SUFFIXES",
    "TOO_SHORT",
    "FaceTrack",
    "PrepareReport",
    "UnusableVideo",
    "clip_names",
    "find_videos",
    "prepare",
    "register_cli",
    "track_faces",
    "video_names",
]
