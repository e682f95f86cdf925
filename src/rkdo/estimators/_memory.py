"""Memory a dense (all pairs) computation will need, checked before anything is allocated.

The exact solvers hold about ``_DENSE_COPIES`` ``(n, n)`` float64 matrices at once (affinity,
log-affinity, kernel scores, their softmax, the gradient's intermediates: the peak RSS growth
of an exact t-SNE fit measured 23, 20 and 11 matrices' worth at n = 1000, 2000, 3000, fixed
costs weighing less as n grows), so they need about
``_DENSE_COPIES * 8 n^2`` bytes; a request above the memory the device has free is refused in
one line that names the way out.
"""

from __future__ import annotations

import os

import torch

__all__ = ["available_bytes", "dense_bytes", "check_dense_fits"]

_DENSE_COPIES = 16


def dense_bytes(n: int) -> int:
    """Estimated peak bytes of an exact (all pairs) neighbour embedding of ``n`` points."""
    return _DENSE_COPIES * 8 * n * n


def available_bytes(device: torch.device) -> int:
    """Free memory of ``device``: CUDA's free bytes, else the host's ``MemAvailable``."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_dense_fits(n: int, device: torch.device, what: str, way_out: str) -> None:
    """``ValueError`` "n = N needs ~X GB with WHAT ...; WAY_OUT" if the estimate exceeds the
    free memory."""
    need, have = dense_bytes(n), available_bytes(device)
    if need > have:
        raise ValueError(f"n = {n} needs ~{need / 1e9:.3g} GB with {what}, {have / 1e9:.3g} GB "
                         f"is free on {device.type}; {way_out}")
