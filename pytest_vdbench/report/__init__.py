"""Run results as a terminal summary and report files (report.json, report.md, report.html).

``recorder.ReportRecorder`` (registered by the plugin) watches the generated tests and runs the
end-of-session sequence; ``row.build_row`` turns every ``ModelRun`` into one typed ``ReportRow``;
``document`` writes report.json and renders ``markdown`` and ``html`` from it; ``summary`` prints
the terminal lines; ``stats``, ``timings``, ``compare``, ``provenance`` and ``media`` are the parts.
"""

from __future__ import annotations

from pytest_vdbench.report.recorder import ReportRecorder
from pytest_vdbench.report.row import ReportRow
from pytest_vdbench.report.rows import collect_rows
from pytest_vdbench.report.state import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "ReportRecorder", "ReportRow", "collect_rows"]
