"""The thread policy: the cores a process may use (affinity, cgroup quota), less the busy ones."""

import torch

from stylevid import cli, threads


def test_cgroup_v2_quota_in_cores(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cores(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cores(tmp_path) is None


def test_cgroup_v1_quota_in_cores(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    assert threads.cgroup_cores(tmp_path) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert threads.cgroup_cores(tmp_path) is None
    assert threads.cgroup_cores(tmp_path / "absent") is None


def test_usable_cores_are_the_affinity_capped_by_the_quota():
    assert threads.usable_cores({0, 1, 2, 3}, None) == 4
    assert threads.usable_cores({0, 1, 2, 3}, 1.5) == 2  # a part core is worth a thread
    assert threads.usable_cores({5}, 8.0) == 1
    assert threads.usable_cores({0, 1}, 0.1) == 1


def test_busy_cores_counts_only_the_allowed_cpus(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    line = "cpu{} {} 0 0 {} 0 0 0 0 0 0\n"
    stat.write_text(
        "cpu 0 0 0 0 0 0 0 0\n" + line.format(0, 0, 0) + line.format(1, 0, 0) + line.format(2, 0, 0)
    )
    # cpu0 fully busy, cpu1 idle, cpu2 (not ours) fully busy, over the watched moment
    later = line.format(0, 100, 0) + line.format(1, 0, 100) + line.format(2, 100, 0)
    monkeypatch.setattr(threads.time, "sleep", lambda seconds: stat.write_text(later))
    assert threads.busy_cores({0, 1}, stat=stat) == 1.0


def test_plan_takes_the_free_cores(monkeypatch):
    monkeypatch.setattr(threads, "allowed_cpus", lambda: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "cgroup_cores", lambda: None)
    assert threads.plan(None, env={}, busy=0.1).threads == 4
    assert threads.plan(None, env={}, busy=1.0).threads == 3
    assert threads.plan(None, env={}, busy=6.0).threads == 1  # never none
    assert threads.plan(None, env={"LOCAL_WORLD_SIZE": "2"}, busy=0.0).threads == 2
    assert threads.plan(None, env={"OMP_NUM_THREADS": "3"}, busy=0.0).threads == 3
    assert threads.plan(2, env={"OMP_NUM_THREADS": "3"}, busy=0.0).threads == 2


def test_main_computes_on_the_threads_asked_for_and_restores_the_callers(monkeypatch, tmp_path):
    seen = []

    def load(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise RuntimeError("stop here")

    monkeypatch.setattr("stylevid.load", load)
    before = torch.get_num_threads()
    argv = [
        "generate",
        "--network",
        "builtin:synth64",
        "--seeds",
        "0",
        "--out",
        str(tmp_path),
        "--threads",
        "1",
    ]
    try:
        cli.main(argv)
    except RuntimeError:
        pass
    assert seen == [1]
    assert torch.get_num_threads() == before


def test_loader_workers_take_the_cores_computing_leaves(monkeypatch):
    monkeypatch.setattr(threads, "allowed_cpus", lambda: {0, 1, 2, 3, 4, 5})
    monkeypatch.setattr(threads, "cgroup_cores", lambda: None)
    chosen = threads.plan(None, env={}, busy=0.0)
    assert threads.loader_workers(chosen) == 0  # every free core computes
    assert threads.loader_workers(chosen, "cuda") == 2  # a GPU computes: at most 2
    assert threads.loader_workers(threads.plan(5, env={})) == 1
    assert threads.loader_workers(threads.plan(1, env={})) == 2
    assert threads.loader_workers(threads.plan(None, env={"LOCAL_WORLD_SIZE": "3"}, busy=4.0), "cuda") == 0


def test_train_and_demo_size_their_loaders_by_the_policy_unless_workers_is_given(monkeypatch, tmp_path):
    monkeypatch.setattr(threads, "allowed_cpus", lambda: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "cgroup_cores", lambda: None)
    seen = []

    def record(*args, **kwargs):
        seen.append(kwargs["workers"] if "workers" in kwargs else args[4])  # Trainer's fifth
        raise KeyboardInterrupt

    monkeypatch.setattr("stylevid.training.run.Trainer", record)
    monkeypatch.setattr("stylevid.training.run.open_dataset", lambda *args: None)
    monkeypatch.setattr("stylevid.training.demo.run_demo", record)
    train = ["train", "--data", "d", "--device", "cpu", "--out", str(tmp_path)]
    for argv in (train, ["demo"]):
        assert cli.console([*argv, "--threads", "3"]) == 130
        assert cli.console([*argv, "--threads", "2", "--workers", "0"]) == 130
    assert seen == [1, 0, 1, 0]  # 4 cores, 3 computing: 1 left to load
