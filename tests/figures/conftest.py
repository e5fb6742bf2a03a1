"""Every figure a test in this folder draws must read on a phone.

A figure is shown 342 CSS px wide in a 390 px phone's text column; there its smallest
text (a tick label, a subscript) must be at least 9 px and every title, axis label,
legend entry and annotation at least 11 px (see :mod:`byhand.figures.style`). Each figure
created during a test is measured when the test ends (except in a test of bad input,
whose figure the function abandoned half drawn).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from matplotlib.figure import Figure

from byhand.figures.style import phone_text_sizes


@pytest.fixture(autouse=True)
def every_figure_reads_on_a_phone(monkeypatch: pytest.MonkeyPatch,
                                  request: pytest.FixtureRequest) -> Iterator[list[Figure]]:
    made: list[Figure] = []
    # test_style draws small text on purpose; a test of bad input may leave a figure
    # half drawn when the function raises.
    if request.module.__name__.endswith("test_style") or "reject" in request.node.name:
        yield made
        return
    original = Figure.__init__

    def recording_init(self: Figure, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Figure, "__init__", recording_init)
    yield made
    monkeypatch.undo()
    small = [f"{text.text!r} at {text.px:.1f} px (needs {text.minimum:g})"
             for fig in made if any(ax.get_visible() for ax in fig.axes)
             for text in phone_text_sizes(fig) if not text.legible]
    assert not small, "text too small at 342 px wide: " + "; ".join(small)
