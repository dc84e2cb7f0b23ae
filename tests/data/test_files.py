"""A dataset's files: a zip opened per process (pickles without a handle), video files opened inside a zip."""

import pickle
import zipfile

import pytest
import torch
from random_datasets import damage_zip_member, write

from stylevid.data.files import DatasetFiles
from stylevid.data.index import read_index
from stylevid.data.reader import read_frames
from stylevid.video import save_video


def test_files_pickle_without_an_open_zip(tmp_path):
    write(tmp_path / "ds.zip", [2], names=None)
    files = DatasetFiles(tmp_path / "ds.zip")
    assert files.read("video_0/000000.png")[:4] == b"\x89PNG"
    copy = pickle.loads(pickle.dumps(files))
    assert copy._zip is None and copy.read("video_0/000001.png")[:4] == b"\x89PNG"


def test_a_video_file_inside_a_zip_is_decoded_from_the_zip(tmp_path):
    mp4 = save_video(torch.zeros(3, 3, 16, 16), tmp_path / "clip.mp4", fps=10)
    with zipfile.ZipFile(tmp_path / "ds.zip", "w") as archive:
        archive.write(mp4, "clip.mp4")
        archive.writestr("broken.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(100))
    files = DatasetFiles(tmp_path / "ds.zip")
    with files.video_stream("clip.mp4") as (container, stream):
        assert (stream.width, stream.height, float(stream.average_rate)) == (16, 16, 10.0)
        assert len(list(container.decode(stream))) == 3
    with pytest.raises(ValueError, match="cannot decode broken.mp4"):
        with files.video_stream("broken.mp4"):
            pass
    files.close()


def test_a_damaged_zip_member_names_the_zip_and_the_member(tmp_path):
    write(tmp_path / "ds.zip", [3, 3], names=None)
    index = read_index(tmp_path / "ds.zip")
    damage_zip_member(tmp_path / "ds.zip", "video_1/000001.png")
    files = DatasetFiles(tmp_path / "ds.zip")
    expected = r"ds\.zip: its member video_1/000001\.png is damaged .*Bad CRC.*re-create the zip"
    with pytest.raises(ValueError, match=expected):
        files.read("video_1/000001.png")
    with pytest.raises(ValueError, match=expected):
        read_frames(files, index.videos[1], [0, 1, 2])
    files.close()
