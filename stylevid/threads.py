"""How many threads a command computes on: the cores it may use, less those something else keeps busy.

torch's default is one OpenMP thread per core the machine has. Every parallel region then waits for
its slowest thread, and a thread that shares its core with another busy process gets the core only
in scheduler slices: on 2 cores beside one process spinning on a core, synth64 trained at 3.1
clips/s on 2 threads against 9.1 on 1 (benchmarks/threads.py; a user's busier machine saw 25x). So
a command counts the cores it may use (affinity, cgroup quota), looks at how busy they are for a
moment, and computes on the free ones.

Loader workers (processes that read and decode clips beside the training step) take the free cores
that computing leaves: one per spare core, at most MAX_LOADER_WORKERS. On a 2-core machine synth64
trained fastest with none (benchmarks/threads.py --tasks train-data, idle: 13.4 clips/s against 12.7
with 1 or 2, and a first step of 1.6 s against 2.4 s; beside a busy core all within 4%): a worker
there only takes time slices from the compute threads, and reading a 64² clip costs little next to
the step.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

SAMPLE_SECONDS = 0.1  # how long the cores' busy time is watched: 10 clock ticks per CPU
CGROUP = Path("/sys/fs/cgroup")
PROC_STAT = Path("/proc/stat")
MAX_LOADER_WORKERS = 2  # what one process's loading needs at most: more only start slower and use memory


@dataclass(frozen=True)
class Plan:
    """The threads one process computes on, and why."""

    threads: int
    reason: str
    export: bool = False  # also the processes this one starts (torchrun's ranks): --threads was given
    free: int = 1  # cores this process may keep busy (its share among torchrun's ranks)


def cgroup_cores(root: Path = CGROUP) -> float | None:
    """The CPU quota of this process's cgroup in cores (v2 cpu.max, else v1 cfs quota); None: no quota."""
    v2 = root / "cpu.max"
    if v2.is_file():
        quota, _, period = v2.read_text().split()[:2] + [""]
        return None if quota == "max" else int(quota) / int(period or 100000)
    for folder in (root / "cpu", root / "cpu,cpuacct"):
        quota_file, period_file = folder / "cpu.cfs_quota_us", folder / "cpu.cfs_period_us"
        if quota_file.is_file() and period_file.is_file():
            quota = int(quota_file.read_text())
            return None if quota <= 0 else quota / int(period_file.read_text())
    return None


def allowed_cpus() -> set[int]:
    """The CPUs this process may run on (its affinity)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def usable_cores(cpus: set[int], quota: float | None) -> int:
    """Whole cores a process may keep busy: its CPUs, capped by a quota (rounded up, at least 1)."""
    return max(1, min(len(cpus), math.ceil(quota)) if quota is not None else len(cpus))


def _cpu_times(stat: Path) -> dict[int, tuple[int, int]]:
    """{cpu: (idle jiffies, total jiffies)} from /proc/stat's per-CPU lines."""
    times = {}
    for line in stat.read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
            times[int(name[3:])] = (ticks[3] + ticks[4], sum(ticks))
    return times


def busy_cores(cpus: set[int], seconds: float = SAMPLE_SECONDS, stat: Path = PROC_STAT) -> float:
    """How many of `cpus` other processes keep busy, watched for `seconds` (0 where unreadable)."""
    try:
        before = _cpu_times(stat)
        time.sleep(seconds)
        after = _cpu_times(stat)
    except (OSError, ValueError, IndexError):
        return 0.0
    busy = 0.0
    for cpu in cpus & before.keys() & after.keys():
        idle, total = (a - b for a, b in zip(after[cpu], before[cpu], strict=True))
        busy += 1 - idle / total if total > 0 else 0.0
    return busy


def plan(requested: int | None, env: dict[str, str] | None = None, busy: float | None = None) -> Plan:
    """The threads for this process: --threads, else OMP_NUM_THREADS, else the free usable cores.

    The free cores are the usable ones less those busy with other work (rounded to the nearest, at
    least 1), shared among the ranks of a torchrun launch (LOCAL_WORLD_SIZE). `busy` is measured
    when None.
    """
    env = os.environ if env is None else env
    cpus = allowed_cpus()
    cores = usable_cores(cpus, cgroup_cores())
    ranks = max(1, int(env.get("LOCAL_WORLD_SIZE", "1")))
    if requested is not None:  # the user's choice: no look at the busy cores
        return Plan(requested, f"--threads {requested}", export=True, free=max(1, cores // ranks))
    if env.get("OMP_NUM_THREADS", "").strip().isdigit() and int(env["OMP_NUM_THREADS"]) > 0:
        omp = env["OMP_NUM_THREADS"]
        return Plan(int(omp), f"OMP_NUM_THREADS={omp}", free=max(1, cores // ranks))
    busy = busy_cores(cpus) if busy is None else busy
    free = max(1, min(cores, round(cores - busy))) // ranks
    return Plan(
        max(1, free),
        f"{cores} usable core(s), {busy:.1f} busy with other work, {ranks} process(es)",
        free=max(1, free),
    )


def loader_workers(chosen: Plan, device: str | torch.device = "cpu") -> int:
    """Loader processes beside the step: one per free core it leaves, at most MAX_LOADER_WORKERS (0: none).

    On the CPU the step computes on `chosen.threads` of the free cores; on a GPU it keeps one core busy
    feeding the device.
    """
    computing = chosen.threads if torch.device(device).type == "cpu" else 1
    return max(0, min(MAX_LOADER_WORKERS, chosen.free - computing))


def apply(chosen: Plan) -> None:
    """Compute on `chosen.threads` threads from now on (and, for --threads, in the processes started)."""
    torch.set_num_threads(chosen.threads)
    if chosen.export:
        # torchrun's ranks read it when they start (otherwise torchrun gives each rank 1 thread).
        os.environ["OMP_NUM_THREADS"] = str(chosen.threads)


@contextlib.contextmanager
def applied(chosen: Plan) -> Iterator[None]:
    """`apply` inside the block; the caller's threads and OMP_NUM_THREADS are restored after."""
    threads, omp = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    apply(chosen)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp
