"""Data-parallel setup: torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), NCCL on GPUs, gloo on CPU.

`torchrun --nproc_per_node N -m spkid train-ge2e ...` starts N processes; `spkid train-ge2e --nprocs N`
re-launches itself through torchrun. Multi-node: torchrun's own rendezvous (`--nnodes`,
`--rdzv-backend c10d --rdzv-endpoint HOST:PORT`) on every node, same command.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(name: str, info: DistInfo) -> torch.device:
    """`auto` means this rank's GPU when CUDA is there, else CPU; names are checked by spkid.devices."""
    from spkid.devices import parse_device

    device = parse_device(name)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", info.local_rank % max(1, torch.cuda.device_count()))
    return device


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return info


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def relaunch_with_torchrun(nprocs: int, argv: list[str]) -> int:
    """Run `python -m torch.distributed.run --nproc_per_node N -m spkid ARGV` and return its status."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nprocs}",
           "-m", "spkid", *argv]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nprocs)))
    return subprocess.call(cmd, env=env)
