"""Report: one self-contained HTML page from a states dataset (charts, tables, regressions).

The page works offline: the Vega, Vega-Lite and vega-embed JavaScript is
inlined. The CLI's ``trs-analytics report PATH --out report.html`` calls
:func:`write_report`.
"""

from __future__ import annotations

from trs_analytics.report._report import write_report

__all__ = ["write_report"]
