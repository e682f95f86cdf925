"""Two CPU processes (gloo) hold the same teacher field and give the same loss as one process."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rkdo.teacher import TemporalRKDOLoss

N_SAMPLES, LOCAL_BATCH, DIM, STEPS, WORLD = 24, 5, 6, 4, 2
STORAGES = ("dense", "topk")


def _make_loss(storage: str, gather: bool) -> TemporalRKDOLoss:
    return TemporalRKDOLoss(N_SAMPLES, alpha=0.5, schedule="cosine", total_steps=STEPS,
                            debias=0.1, supervisory="labels", storage=storage, topk=5,
                            gather_distributed=gather)


def _data(step: int):
    """The global batch of a step: embeddings, sample indices (one repeated across ranks)."""
    g = torch.Generator().manual_seed(100 + step)
    size = WORLD * LOCAL_BATCH
    z1 = torch.randn(size, DIM, generator=g, dtype=torch.float64)
    z2 = torch.randn(size, DIM, generator=g, dtype=torch.float64)
    index = torch.randperm(N_SAMPLES, generator=g)[:size]
    if step == 2:  # as a padding DistributedSampler would: rank 1 repeats a sample of rank 0
        index[LOCAL_BATCH] = index[0]
    labels = index % 3
    return z1, z2, index, labels


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        for storage in STORAGES:
            _run(rank, storage, out)
    finally:
        dist.destroy_process_group()


def _run(rank: int, storage: str, out: str) -> None:
    """Train the field for STEPS steps on this rank's share of each global batch."""
    loss_fn = _make_loss(storage, gather=True)
    local = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
    losses, grads = [], []
    for step in range(STEPS):
        z1, z2, index, labels = _data(step)
        z1 = z1[local].clone().requires_grad_(True)
        z2 = z2[local].clone().requires_grad_(True)
        loss = loss_fn(z1, z2, index=index[local], step=step, labels=labels[local])
        loss.backward()
        losses.append(loss.item())
        grads.append((z1.grad, z2.grad))
    torch.save({"losses": losses, "grads": grads, "field": loss_fn.state_dict()},
               os.path.join(out, f"{storage}-rank{rank}.pt"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def spawned(tmp_path_factory):
    """One start of two gloo ranks runs every storage (process start-up is the slow part)."""
    out = tmp_path_factory.mktemp("ddp")
    # fork skips re-importing torch in each rank (seconds on a loaded machine); each rank sets
    # one thread before any parallel work, so it never reuses the parent's OpenMP pool
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True,
                       start_method=method)
    return out


@pytest.mark.parametrize("storage", STORAGES)
def test_two_processes_match_one(spawned, storage):
    ranks = [torch.load(spawned / f"{storage}-rank{r}.pt") for r in range(WORLD)]

    single = _make_loss(storage, gather=False)
    for step in range(STEPS):
        z1, z2, index, labels = _data(step)
        z1.requires_grad_(True)
        z2.requires_grad_(True)
        loss = single(z1, z2, index=index, step=step, labels=labels)
        loss.backward()
        # the global loss is the mean of the ranks' local means (equal local batches)
        rank_mean = sum(r["losses"][step] for r in ranks) / WORLD
        assert rank_mean == pytest.approx(loss.item(), rel=1e-6)
        for rank, result in enumerate(ranks):
            local = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
            g1, g2 = result["grads"][step]
            # DDP averages gradients over ranks: the single-process gradient is grad / W
            torch.testing.assert_close(g1 / WORLD, z1.grad[local])
            torch.testing.assert_close(g2 / WORLD, z2.grad[local])

    # every rank holds exactly the same field ...
    for name in single.state_dict():
        assert torch.equal(ranks[0]["field"][name], ranks[1]["field"][name]), name
    # ... and it is the single process's field (compared as full rows: top-k may order ties
    # differently)
    distributed_field = _make_loss(storage, gather=False)
    distributed_field.load_state_dict(ranks[0]["field"])
    everything = torch.arange(N_SAMPLES)
    torch.testing.assert_close(distributed_field.rows(everything), single.rows(everything))
    assert not torch.equal(single.rows(everything)[:, :N_SAMPLES].diagonal(),
                           torch.ones(N_SAMPLES))  # the field did move
