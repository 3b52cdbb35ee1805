"""Server frames: an update written from shared row JSON is the frame its builder makes."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from chain.messages import MAX_ROWS_PER_FRAME, build_update, encode_frame, encode_update, row_chunks
from ingest.normalize import static_row
from tests.chain.market import real_contracts

ROWS = [static_row(contract) for contract in real_contracts("SOL")]


@given(st.integers(0, len(ROWS)), st.integers(1, 2**40), st.integers(0, 2**45))
def test_an_update_from_row_json_is_the_same_text_as_from_its_builder(count: int, seq: int, ts: int) -> None:
    rows = ROWS[:count]
    expected = encode_frame(build_update(seq=seq, asset="SOL", rows=rows, ts=ts))
    assert encode_update(seq=seq, asset="SOL", rows_json=orjson.dumps(rows), ts=ts) == expected


def test_rows_go_out_in_frames_of_at_most_the_limit() -> None:
    rows = (ROWS * (2 * MAX_ROWS_PER_FRAME // len(ROWS) + 1))[: 2 * MAX_ROWS_PER_FRAME + 1]
    assert [len(chunk) for chunk in row_chunks(rows)] == [MAX_ROWS_PER_FRAME, MAX_ROWS_PER_FRAME, 1]
    assert row_chunks([]) == [[]]
