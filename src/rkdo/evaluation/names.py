"""The evaluation's names, torch-free: its protocols and the keys of the metrics each reports.

The one list of each; :mod:`.protocols` runs them, the run config offers the protocols
(``rkdo train --eval-protocol``, ``rkdo eval --protocol``: their ``--help`` loads no torch), and
the report and the plots order their tables by the keys.
"""

from __future__ import annotations

__all__ = ["PROTOCOLS", "FULL_METRICS", "PAPER_METRICS"]

PROTOCOLS = ("full", "paper", "both")
FULL_METRICS = (
    "linear_probe",
    "knn_acc_200",
    "knn_acc_20",
    "nmi",
    "ari",
    "cluster_acc",
    "neighbourhood_acc_5",
    "heldout_icon_loss",
)
PAPER_METRICS = ("paper_linear_probe", "paper_nmi", "paper_ari", "paper_neighbourhood_acc_5")
