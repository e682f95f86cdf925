"""The benchmark report: the paper's tables rebuilt from a result store, verdicts and figures.

    view      per-seed values and paired comparisons (the data the report reads)
    tables    formatting and the markdown tables
    claims    a verdict per paper claim
    figures   PNG figures (matplotlib's Figure API, imported only when drawing)
    build     the assembly: :func:`build_report`, :func:`write_report`
"""

from rkdo.bench.report.build import build_report, write_report
from rkdo.bench.report.figures import make_figures

__all__ = ["build_report", "write_report", "make_figures"]
