"""The report fixture itself: counters add up and refuse unknown kinds (so a typo cannot hide a figure)."""

import pytest


def test_report_counts_known_kinds_and_refuses_others(reliability_report):
    before = reliability_report.counts["events"]
    reliability_report.add("events", 3)
    assert reliability_report.counts["events"] == before + 3
    reliability_report.counts["events"] -= 3  # this self-check must not inflate the printed figures
    with pytest.raises(ValueError):
        reliability_report.add("fault", 1)
