"""Past one machine: rank and world helpers for ``torchrun`` (process group, barriers, gathers).

Under ``torchrun --nproc_per_node=K`` every process sees ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``. Training (:mod:`rapidinr.training.loop`) wraps the model in DDP and each rank
decodes its slice of one shared-seed permutation; the sharded encode
(:mod:`rapidinr.encoding.sharded`) gives each rank whole chunks.
"""
from __future__ import annotations

import dataclasses
import datetime
import os

import torch
import torch.distributed as dist

from rapidinr.core.errors import UserError


@dataclasses.dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> Rank:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when not under torchrun)."""
    try:
        rank = int(os.environ.get("RANK", 0))
        world = int(os.environ.get("WORLD_SIZE", 1))
        local = int(os.environ.get("LOCAL_RANK", 0))
    except ValueError:
        raise UserError("RANK / WORLD_SIZE / LOCAL_RANK must be integers (set by torchrun)") from None
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"RANK {rank} is outside WORLD_SIZE {world}")
    return Rank(rank, world, local)


def init(device: torch.device, timeout_s: float = 600) -> Rank:
    """Join the process group when under torchrun (gloo on the CPU, NCCL on CUDA). Idempotent."""
    place = from_env()
    if place.world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return place


def local_device(device: torch.device, place: Rank) -> torch.device:
    """On CUDA each rank takes the GPU of its local rank; the CPU is shared."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", place.local_rank)
        torch.cuda.set_device(device)
    return device


def barrier(group=None) -> None:
    """Wait for every rank (of ``group``, default: the whole job); a no-op outside torchrun."""
    if dist.is_initialized():
        dist.barrier(group=group)


def waiting_group(timeout_s: float):
    """A gloo group of every rank whose barriers wait up to ``timeout_s`` (collective: every rank
    calls it): for waits as long as the work between them (a merge of many shards), which the
    job's own group, made with a timeout of minutes (perhaps by the caller, perhaps NCCL), would
    cut short. None outside torchrun."""
    if not dist.is_initialized():
        return None
    return dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout_s))


def finish() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_gather_1d(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Gather a 1-D int64 tensor of the same length from every rank (no pickling)."""
    if not dist.is_initialized():
        return [tensor]
    out = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(out, tensor)
    return out
