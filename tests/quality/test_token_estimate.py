"""The estimate's token ends, vectorised, against their definition: a character loop."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from qudata.quality.tokens import EstimateCounter, estimate_tokens


def loop_ends(text: str) -> list[int]:
    """The definition: the running cost (0.5, then ``1 / 4.25 + 0.45 * extra UTF-8
    bytes`` per character) reaches 1, 2, ... tokens; the last end is the text's end."""
    n = estimate_tokens(text)
    if text.isascii():
        ends = [min(len(text), math.ceil((k + 0.5) * 4.25)) for k in range(n)]
    else:
        ends, cost, k = [], 0.5, 1
        for offset, char in enumerate(text, 1):
            extra = 0 if char < "\x80" else len(char.encode("utf-8", "surrogatepass")) - 1
            cost += 1 / 4.25 + 0.45 * extra
            while k <= n and cost >= k:
                ends.append(offset)
                k += 1
        ends.extend([len(text)] * (n - len(ends)))
    if ends:
        ends = ends[:n]
        ends[-1] = len(text)
    return ends


CASES = [
    "",
    "a",
    "é",
    "😀",
    "éa",
    "é" * 4,
    "hello world " * 50,
    "😀" * 5000,
    "日" * 10_000,
    "a\ud800b\udc00" * 30,
    "ünïcödé text with 日本語 mixed in. " * 300,
]


def test_known_texts() -> None:
    counter = EstimateCounter()
    for text in CASES:
        assert list(counter.token_ends(text)) == loop_ends(text), text[:20]
        assert len(counter.token_ends(text)) == counter.count(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("aZ 7\né日😀\u0301\ud800"), max_size=3000))
def test_any_text(text: str) -> None:
    assert list(EstimateCounter().token_ends(text)) == loop_ends(text)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="ab Z\n7.", min_size=1, max_size=3000)  # ASCII: a closed form
    | st.text(alphabet=st.sampled_from("aZ 7\né日😀\u0301\ud800"), min_size=1, max_size=3000)
)
def test_each_end_looked_at_alone_is_the_definitions(text: str) -> None:
    """The budget looks ends up one at a time (a bisection, a window's end, a slice):
    each is the definition's, whichever way it is asked for."""
    from bisect import bisect_right

    ends, want = EstimateCounter().token_ends(text), loop_ends(text)
    assert [ends[k] for k in range(len(ends))] == want
    assert [ends[-k] for k in range(1, len(ends) + 1)] == [
        want[-k] for k in range(1, len(want) + 1)
    ]
    middle = len(want) // 2
    assert list(ends[middle:]) == want[middle:] and list(ends[:middle]) == want[:middle]
    for start in (0, len(text) // 3, len(text) - 1):
        assert bisect_right(ends, start) == bisect_right(want, start)
