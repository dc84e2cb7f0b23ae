"""The restricted unpickler reads numpy pickles and refuses anything that would run code."""

import os
import pickle

import numpy as np
import pytest

from stylevid.metrics import safe_pickle


class Payload:
    """Unpickling this with plain pickle would run a shell command."""

    def __reduce__(self):
        return os.system, ("echo pwned",)


class Plain:
    pass


def test_reads_nested_numpy_arrays(tmp_path):
    value = {
        "params": {"conv/kernel": np.arange(6, dtype=np.float32).reshape(2, 3)},
        "meta": [1, 2.5, "x", (np.float64(3.0), None)],
    }
    path = tmp_path / "w.pkl"
    path.write_bytes(pickle.dumps(value))
    loaded = safe_pickle.load(path)
    np.testing.assert_array_equal(loaded["params"]["conv/kernel"], value["params"]["conv/kernel"])
    assert loaded["params"]["conv/kernel"].dtype == np.float32
    assert loaded["meta"][:3] == [1, 2.5, "x"]


@pytest.mark.parametrize(
    "value, named",
    [
        (Payload(), r"(posix|nt)\.system"),
        ({"w": Plain()}, r"test_safe_pickle\.Plain"),
        (set, r"builtins\.set"),
    ],
)
def test_refuses_other_globals_and_names_them(tmp_path, value, named):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(value))
    with pytest.raises(pickle.UnpicklingError, match=named):
        safe_pickle.load(path)


@pytest.mark.parametrize(
    "value, named",
    [
        ({"w": np.array([1, "a"], dtype=object)}, "/w is an array of Python objects"),
        ({"s": {1, 2}}, "/s is a set"),
    ],
)
def test_refuses_values_built_without_globals(tmp_path, value, named):
    # Object arrays and sets need no global in a protocol-5 pickle, so find_class never sees them.
    path = tmp_path / "objects.pkl"
    path.write_bytes(pickle.dumps(value, protocol=5))
    with pytest.raises(pickle.UnpicklingError, match=named):
        safe_pickle.load(path)
