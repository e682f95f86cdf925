"""Two CPU processes (gloo) with DistributedDataParallel give the gradients of one process on the
concatenated batch, when the loss gathers its candidates (``gather_distributed=True``).

Each rank holds half of the global batch. DDP averages the parameter gradients over ranks; with a
gradient-correct gather that average must equal the single-process gradient of the loss on the
whole batch, and the mean of the rank losses must equal the single-process loss.
"""

from __future__ import annotations

import datetime
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rkdo import IConLoss, RKDOLoss
from rkdo.kernels import KNNGraph, SameLabel, StudentT

WORLD, GLOBAL_BATCH, IN_DIM, OUT_DIM = 2, 12, 6, 5


def _losses(gather: bool) -> dict[str, torch.nn.Module]:
    return {
        "pair": IConLoss(gather_distributed=gather),
        "symmetric": IConLoss(form="symmetric", debias=0.1, gather_distributed=gather),
        "supcon": IConLoss(SameLabel(), temperature=0.3, gather_distributed=gather),
        "supcon_symmetric_rkdo": RKDOLoss(supervisory=SameLabel(), form="symmetric",
                                          gather_distributed=gather),
        "rkdo": RKDOLoss(gather_distributed=gather),
        "rkdo_detached": RKDOLoss(alpha=0.3, detach_teacher=True, gather_distributed=gather),
        "single_knn_tsne": IConLoss(KNNGraph(3), StudentT(), form="single", debias=0.1,
                                    gather_distributed=gather),
    }


def _data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "x1": torch.randn(GLOBAL_BATCH, IN_DIM, generator=g, dtype=torch.float64),
        "x2": torch.randn(GLOBAL_BATCH, IN_DIM, generator=g, dtype=torch.float64),
        "inputs": torch.randn(GLOBAL_BATCH, 3, generator=g, dtype=torch.float64),
        # labels repeat across the two ranks' halves, so positives cross ranks
        "labels": torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 4, 4]),
    }


def _model() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Linear(IN_DIM, OUT_DIM).double()


def _step(model, loss_fn, name: str, data: dict[str, torch.Tensor]) -> torch.Tensor:
    """One forward (both views in one call, as DDP wants) and the loss."""
    batch = data["x1"].shape[0]
    z = model(torch.cat([data["x1"], data["x2"]]))
    z1, z2 = z[:batch], z[batch:]
    if name.startswith("single"):
        return loss_fn(z1, inputs=data["inputs"])
    return loss_fn(z1, z2, labels=data["labels"])


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        data = _data()
        half = GLOBAL_BATCH // WORLD
        local = {k: v[rank * half:(rank + 1) * half] for k, v in data.items()}
        model = torch.nn.parallel.DistributedDataParallel(_model())
        results: dict[bool, dict] = {True: {}, False: {}}
        for gather in (True, False):
            for name, loss_fn in _losses(gather).items():
                model.zero_grad(set_to_none=True)
                value = _step(model, loss_fn, name, local)
                value.backward()
                mean_value = value.detach().clone()
                dist.all_reduce(mean_value)
                results[gather][name] = {
                    "loss": value.detach(),
                    "mean_loss": mean_value / WORLD,
                    "grads": [p.grad.detach().clone() for p in model.parameters()],
                }
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_ranks(tmp_path: Path) -> list[dict]:
    # fork, where there is one: spawned children re-import torch and DDP's torch._dynamo (20-30 s
    # on a shared 2-core machine); forked ones inherit both from here (a few seconds in all)
    import torch._dynamo  # noqa: F401

    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True,
                       start_method=method)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]


def _single_process() -> dict[str, dict]:
    data = _data()
    out = {}
    for name, loss_fn in _losses(True).items():  # no process group here: the gather is identity
        model = _model()
        value = _step(model, loss_fn, name, data)
        value.backward()
        out[name] = {"loss": value.detach(), "grads": [p.grad for p in model.parameters()]}
    return out


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory) -> list[dict]:
    """Both ranks' results, keyed by gather_distributed then loss name (one spawn for all)."""
    return _run_two_ranks(tmp_path_factory.mktemp("ddp_gather"))


@pytest.mark.parametrize("name", list(_losses(True)))
def test_ddp_gradients_equal_single_process(two_rank_results, name: str) -> None:
    reference = _single_process()[name]
    for rank_results in two_rank_results:
        result = rank_results[True][name]
        torch.testing.assert_close(result["mean_loss"], reference["loss"], rtol=1e-12, atol=1e-14)
        for got, expected in zip(result["grads"], reference["grads"], strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-13)
    # each rank really saw only its half: its own loss differs from the global one
    assert not torch.allclose(two_rank_results[0][True][name]["loss"], reference["loss"])


def test_without_gather_negatives_stay_local(two_rank_results) -> None:
    """The comparison above can fail: local-only negatives give different gradients."""
    reference = _single_process()["pair"]
    got = two_rank_results[0][False]["pair"]["grads"][0]
    assert not torch.allclose(got, reference["grads"][0], rtol=1e-3, atol=1e-6)
