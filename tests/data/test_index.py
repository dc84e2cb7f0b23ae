"""The dataset index: folders without dataset.json, unusable videos skipped with their reason, bad indexes."""

import json

import numpy as np
import pytest
from PIL import Image
from random_datasets import SIZE, clip, write

from stylevid.data.files import DatasetFiles
from stylevid.data.index import read_index
from stylevid.data.reader import read_frames


def test_frame_folders_without_dataset_json_are_indexed_in_natural_order(tmp_path):
    frames = clip(0, 11)
    (tmp_path / "ds" / "clip").mkdir(parents=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / "ds" / "clip" / f"frame{t + 1}.png")
    with pytest.warns(UserWarning, match="no dataset.json.*25.0 fps"):
        index = read_index(tmp_path / "ds")
    (entry,) = index.videos
    assert (index.fps, index.resolution, index.factor_names, entry.factors) == (25.0, SIZE, None, None)
    np.testing.assert_array_equal(read_frames(DatasetFiles(tmp_path / "ds"), entry, range(11)), frames)


def test_unusable_videos_are_skipped_with_their_reason(tmp_path):
    path = tmp_path / "ds"
    write(path, [2, 2, 2, 2, 2])
    (path / "video_1" / "000001.png").write_bytes(b"not a png")
    (path / "video_2" / "notes.txt").write_text("hello")
    (path / "video_3" / "000001.png").unlink()
    Image.fromarray(clip(0, 1, size=6)[0]).save(path / "video_4" / "000000.png")
    (path / "extra").mkdir()
    Image.fromarray(clip(0, 1)[0]).save(path / "extra" / "000000.png")
    meta = json.loads((path / "dataset.json").read_text())
    meta["videos"].append({**meta["videos"][0], "name": "gone"})
    (path / "dataset.json").write_text(json.dumps(meta))
    index = read_index(path)
    assert [v.name for v in index.videos] == ["video_0", "video_2"]
    reasons = dict(index.skipped)
    assert "000001.png is not a readable png/jpg" in reasons["video_1"]
    assert "not a .png/.jpg/.jpeg frame" in reasons["video_2/notes.txt"]
    assert "holds 1 frames but dataset.json says 2" in reasons["video_3"]
    assert "6x6" in reasons["video_4"]
    assert "not listed in dataset.json" in reasons["extra"]
    assert "folder is missing" in reasons["gone"]


def test_a_damaged_dataset_json_is_a_clear_error(tmp_path):
    write(tmp_path / "ds", [2])
    (tmp_path / "ds" / "dataset.json").write_text("{")
    with pytest.raises(ValueError, match="dataset.json is not valid JSON"):
        read_index(tmp_path / "ds")
    with pytest.raises(FileNotFoundError, match="no dataset"):
        read_index(tmp_path / "nothing")


@pytest.mark.parametrize("version", ["1", 1.0, True])
def test_a_format_version_that_is_not_an_integer_says_so(tmp_path, version):
    write(tmp_path / "ds", [2])
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    (tmp_path / "ds" / "dataset.json").write_text(json.dumps({**meta, "format_version": version}))
    with pytest.raises(ValueError, match=f"format_version {version!r} .*must be an integer") as caught:
        read_index(tmp_path / "ds")
    assert "upgrade" not in str(caught.value)
