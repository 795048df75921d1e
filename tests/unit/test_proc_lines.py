"""proc.run's line splitting: every line whole, whatever the chunks the pipe delivers."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from cnbsim.proc import _Lines


@given(st.text(alphabet="ab\n\u00e9", max_size=200), st.lists(st.integers(0, 200), max_size=10))
def test_lines_are_the_same_however_the_output_is_chunked(text, cuts):
    data = text.encode()
    seen: list[str] = []
    lines = _Lines(seen.append)
    points = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    for start, end in itertools.pairwise(points):
        lines.feed(data[start:end])
    lines.close()
    assert seen == text.splitlines(keepends=True)
    assert lines.text() == text


def test_a_long_line_in_many_chunks_is_one_line():
    seen: list[str] = []
    lines = _Lines(seen.append)
    for _ in range(1000):
        lines.feed(b"x" * 1000)
    lines.feed(b"\nend")
    lines.close()
    assert [len(line) for line in seen] == [1_000_001, 3]
