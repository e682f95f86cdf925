"""Memory a run needs, estimated from its settings before any data is loaded.

For ``n`` images of ``C`` channels at their stored side ``s0``, a local batch ``B`` trained at
side ``s`` with an encoder that keeps ``a`` floats per input pixel for the backward pass:

    dataset      n * C * s0^2 bytes                        (uint8, in memory for the whole run)
    step         2 views * B * s^2 * 4 bytes * a * 1.5     (activations, and their gradients)
    evaluation   512 * s^2 * 4 bytes * a / 3               (a forward pass without gradients)

The ``a`` of each encoder was measured by summing the tensors autograd saves at 128 px (small-cnn
123, resnet18 512, resnet18-cifar 2143); the estimate is meant to catch settings that are off
by orders of magnitude (``--image-size 4000``), not to plan memory to the last megabyte. The
host needs the dataset; the device that trains needs the step (and the dataset, on a GPU).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from rkdo.training.config import TrainConfig
from rkdo.vision import data as data_module

__all__ = ["estimate_bytes", "available_bytes", "check_memory"]

# (images in train + test, channels) of the named datasets, as rkdo.vision.data loads them
_DATASET_SHAPES = {"digits": (1797, 1), "fashion-mnist": (70000, 1), "cifar10": (60000, 3),
                   "cifar100": (60000, 3), "stl10": (13000, 3)}
_SAVED_FLOATS_PER_PIXEL = {"small-cnn": 125, "resnet18": 512, "resnet18-cifar": 2150}
_EVAL_BATCH = 512
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}


def _dataset_shape(dataset: str) -> tuple[int, int]:
    """(number of images, channels); an image folder is counted by its file names."""
    if dataset in _DATASET_SHAPES:
        return _DATASET_SHAPES[dataset]
    root = Path(dataset.removeprefix(data_module.IMAGEFOLDER_PREFIX))
    count = sum(1 for path in root.rglob("*") if path.suffix.lower() in _IMAGE_SUFFIXES)
    return count, 3


def estimate_bytes(config: TrainConfig, world: int = 1) -> dict[str, int]:
    """``{"dataset": ..., "step": ...}``: the estimated bytes of the in-memory dataset and of one
    training step (or an evaluation batch, whichever is larger) of one process."""
    count, channels = _dataset_shape(config.dataset)
    native = data_module.default_image_size(config.dataset)
    size = config.resolved_image_size()
    per_pixel = _SAVED_FLOATS_PER_PIXEL.get(config.encoder, max(_SAVED_FLOATS_PER_PIXEL.values()))
    local_batch = max(config.batch_size // max(world, 1), 1)
    step = 2 * local_batch * size * size * 4 * per_pixel * 3 // 2
    if config.eval_protocol != "none":
        step = max(step, _EVAL_BATCH * size * size * 4 * per_pixel // 3)
    return {"dataset": count * channels * native * native, "step": step}


def _cgroup_free() -> int | None:
    """What the cgroup (v2) still allows this process, if it is limited."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else int(limit) - used


def available_bytes(device: torch.device) -> int | None:
    """Memory available on ``device`` now (host: MemAvailable and the cgroup limit; GPU: its
    total memory); ``None`` if unknown."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except OSError:
        pass
    limit = _cgroup_free()
    candidates = [value for value in (free, limit) if value is not None]
    return min(candidates) if candidates else None


def _human(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def check_memory(config: TrainConfig, device: torch.device) -> None:
    """Refuse settings whose dataset or step cannot fit in memory on the host and on
    ``device`` (the run's, resolved), before loading anything."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    need = estimate_bytes(config, world)
    use_cuda = device.type == "cuda"
    host = available_bytes(torch.device("cpu"))
    on_device = available_bytes(device) if use_cuda else host
    host_need = need["dataset"] + (0 if use_cuda else need["step"])
    device_need = need["dataset"] + need["step"]
    for needed, have, where in ((host_need, host, "memory"),
                                (device_need if use_cuda else 0, on_device, f"{device} memory")):
        if have is not None and needed > have:
            size = config.resolved_image_size()
            raise ValueError(
                f"--image-size {size} with --batch-size {config.batch_size} and --encoder "
                f"{config.encoder} needs an estimated {_human(needed)} of {where} (dataset "
                f"{_human(need['dataset'])}, one step {_human(need['step'])}), but "
                f"{_human(have)} is available; lower --image-size or --batch-size"
            )
