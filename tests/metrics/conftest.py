"""Fixtures of the metric tests."""

import pytest


@pytest.fixture
def heatmap_titles(monkeypatch):
    """The titles of the figures drawn and closed while the test runs, read from the figure objects."""
    from matplotlib import pyplot  # noqa: PLC0415 - plotting only here

    titles, close = [], pyplot.close

    def close_recording(figure=None):
        titles.append(figure.axes[0].get_title())
        close(figure)

    monkeypatch.setattr(pyplot, "close", close_recording)
    return titles
