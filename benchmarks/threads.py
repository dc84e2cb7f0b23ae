"""Threads beside busy cores: training clips/s and `invert` images/s, torch's default and stylevid's policy.

    python benchmarks/threads.py [--loads 0,1] [--policies default,policy] [--steps 4] [--seconds 60]
    python benchmarks/threads.py --tasks train-data --loads 0 --workers 0,1,2,loaders

Each cell runs in a fresh process (OpenMP reads its settings when torch loads) while `load` other
processes spin on the CPU. Policies: default (torch's own: one thread per core), policy
(stylevid.threads, as every command applies it), passive (default threads, OMP_WAIT_POLICY=PASSIVE:
waiting threads sleep instead of spinning), policy+passive (both), 1 (one thread). Training is the
synth64 preset on random clips (benchmarks/train.py's RandomClips); invert is the built-in encoder
on rendered faces (--align none: the face crop is measured elsewhere). train-data is synth64
training reading a real dataset zip (--data; a 16-video synthetic one is written there if missing)
through each of --workers loader processes ("loaders": as many as stylevid.threads.loader_workers
chooses); the first step, where the workers start, is timed apart. A cell stops after --steps
timed steps or --seconds, whichever comes first, after one warm-up step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

POLICIES = ("default", "policy", "passive", "policy+passive", "1")
TASKS = {"train": "clips/s", "train-data": "clips/s", "invert": "images/s"}
LOADERS = "loaders"  # a --workers value: the loader workers the policy chooses


def _train(steps: int, seconds: float, batch: int) -> float:
    import torch  # noqa: PLC0415
    from train import RandomClips  # noqa: PLC0415  (benchmarks/train.py, beside this file)

    from stylevid.training.config import train_preset  # noqa: PLC0415
    from stylevid.training.distributed import ProcessGroup  # noqa: PLC0415
    from stylevid.training.trainer import Trainer  # noqa: PLC0415

    cfg = dataclasses.replace(train_preset("synth64"), batch=batch)
    clips = RandomClips(cfg.model.generator.resolution, cfg.model.discriminator.frames, count=batch * 2)
    process = ProcessGroup(device=torch.device("cpu"))
    trainer = Trainer(cfg, clips, "/tmp/stylevid-bench-threads", process=process)
    return batch * _timed(trainer.step, steps, seconds)


def _train_data(steps: int, seconds: float, batch: int, workers: int, data: str) -> dict:
    import torch  # noqa: PLC0415

    from stylevid.training.config import train_preset  # noqa: PLC0415
    from stylevid.training.distributed import ProcessGroup  # noqa: PLC0415
    from stylevid.training.run import open_dataset  # noqa: PLC0415
    from stylevid.training.trainer import Trainer  # noqa: PLC0415

    cfg = dataclasses.replace(train_preset("synth64"), batch=batch)
    process = ProcessGroup(device=torch.device("cpu"))
    trainer = Trainer(cfg, open_dataset(data, cfg), "/tmp/stylevid-bench-threads", process, workers)
    start = time.perf_counter()
    trainer.step()  # the loader's workers start here
    first = time.perf_counter() - start
    rate = batch * _timed(trainer.step, steps, seconds, warm_up=False)
    return {"rate": rate, "first_step_s": first}


def _invert(steps: int, seconds: float, images: int) -> float:
    import stylevid  # noqa: PLC0415

    gen = stylevid.load("builtin:synth64")
    enc = stylevid.load_encoder("builtin:synth64")
    faces = gen.render(gen.sample(images, seed=0, frames=1), 1)[:, 0]  # [N, 3, R, R] in [-1, 1]
    refs = [face for face in faces]
    return images * _timed(lambda: enc.invert(gen, images=refs, align="none"), steps, seconds)


def _timed(step, steps: int, seconds: float, warm_up: bool = True) -> float:
    """Calls of `step` per second: one warm-up call, then up to `steps` calls within `seconds`."""
    if warm_up:
        step()
    start = time.perf_counter()
    done = 0
    while done < steps and (done == 0 or time.perf_counter() - start < seconds):
        step()
        done += 1
    return done / (time.perf_counter() - start)


def child(task: str, policy: str, steps: int, seconds: float, size: int, workers: str, data: str) -> dict:
    """One cell, in this process: the rate, the threads it computed on and the loader workers."""
    import torch  # noqa: PLC0415

    from stylevid import threads  # noqa: PLC0415

    chosen = threads.plan(None)
    if policy.startswith("policy"):
        threads.apply(chosen)
    elif policy == "1":
        torch.set_num_threads(1)
    if task != "train-data":
        rate = (_train if task == "train" else _invert)(steps, seconds, size)
        return {"rate": rate, "threads": torch.get_num_threads(), "workers": "-"}
    loaders = threads.loader_workers(chosen) if workers == LOADERS else int(workers)
    cell = _train_data(steps, seconds, size, loaders, data)
    return {**cell, "threads": torch.get_num_threads(), "workers": loaders}


def _cell(task: str, policy: str, load: int, workers: str, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "KMP_", "MKL_"))}
    if policy.endswith("passive"):
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
    try:
        time.sleep(0.5 if load else 0)  # the spinners are on the cores before the policy looks
        size = args.images if task == "invert" else args.batch
        command = [sys.executable, __file__, "--child", task, policy]
        command += [str(args.steps), str(args.seconds), str(size), workers, args.data]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="train,invert", help="train, invert or both")
    parser.add_argument("--loads", default="0,1", help="busy processes beside each cell, e.g. 0,1,2")
    parser.add_argument("--policies", default="default,policy", help=f"of {', '.join(POLICIES)}")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per cell (at most)")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per cell (1 step at least)")
    parser.add_argument("--batch", type=int, default=8, help="clips per training step")
    parser.add_argument("--images", type=int, default=4, help="images per invert call")
    parser.add_argument(
        "--workers", default="0,1,2", help=f"train-data's loader workers, e.g. 0,1,2,{LOADERS}"
    )
    parser.add_argument("--data", default="/tmp/stylevid-bench-threads.zip", help="train-data's dataset")
    parser.add_argument("--child", nargs=7, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, policy, steps, seconds, size, workers, data = args.child
        print(json.dumps(child(task, policy, int(steps), float(seconds), int(size), workers, data)))
        return
    tasks, policies = args.tasks.split(","), args.policies.split(",")
    loads = [int(n) for n in args.loads.split(",")]
    bad = [name for name in tasks if name not in TASKS] + [p for p in policies if p not in POLICIES]
    if bad:
        parser.error(f"unknown {', '.join(bad)}: tasks {', '.join(TASKS)}; policies {', '.join(POLICIES)}")
    if "train-data" in tasks and not os.path.exists(args.data):
        from stylevid.data.synthetic import synthesize  # noqa: PLC0415

        synthesize(args.data, videos=16, frames=16, resolution=64, seed=0, workers=1)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the run")
    print(f"{'task':10} {'busy':>4} {'policy':14} {'threads':>7} {'workers':>7} {'rate':>16} {'1st step':>8}")
    for task in tasks:
        for load in loads:
            for policy in policies:
                for workers in args.workers.split(",") if task == "train-data" else ["-"]:
                    cell = _cell(task, policy, load, workers, args)
                    rate = f"{cell['rate']:.2f} {TASKS[task]}"
                    first = f"{cell['first_step_s']:.1f} s" if "first_step_s" in cell else ""
                    print(
                        f"{task:10} {load:>4} {policy:14} {cell['threads']:>7} {cell['workers']:>7}"
                        f" {rate:>16} {first:>8}"
                    )


if __name__ == "__main__":
    main()
