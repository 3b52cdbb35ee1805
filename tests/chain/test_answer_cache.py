"""The options answer replayed from its rows while the chain is unchanged, through the project's ASGI application."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, cast

import orjson
import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator

from chain.answer_cache import AnswerCache, cache_figures
from ingest.normalize import ContractRow
from optionsite.handlers import ThreadedASGIHandler
from optionsite.throttling import AnonRedisRateThrottle

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

JSON = [(b"host", b"localhost"), (b"accept", b"application/json")]


async def get(app: AnswerCache, path: str, headers: list[tuple[bytes, bytes]] = JSON) -> dict[str, Any]:
    """The response, once ``app`` is done with the request (the cache keeps an answer after sending it)."""
    communicator = HttpCommunicator(app, "GET", path, headers=headers)
    response = await communicator.get_response(timeout=10)
    await communicator.wait(timeout=10)
    return response


def without_moments(body: bytes) -> dict[str, Any]:
    """The answer without what differs from one request to the next: its ts and the feed's ages."""
    answer = orjson.loads(body)
    answer.pop("ts")
    answer["feed"].pop("data_age")
    answer["feed"].pop("last_message_age")
    return cast(dict[str, Any], answer)


def repriced(redis_client: Any, row: ContractRow, *, mark_price: float) -> ContractRow:
    """``row`` written again with another mark price, as the ingest would: the chain's revision moves."""
    from ingest.store import write_rows

    changed = cast(ContractRow, {**row, "mark_price": mark_price})
    pipe = redis_client.pipeline()
    write_rows(pipe, asset="SOL", rows=[changed])
    pipe.execute()
    return changed


@pytest.fixture
def cache() -> Iterator[AnswerCache]:
    """A cache in front of a handler of its own, as ``optionsite.asgi`` builds them.

    The handler's long-lived threads keep their database connections between requests: they are
    stopped after the test, so that no later test finds one of this test's connections open."""
    answers = AnswerCache(ThreadedASGIHandler(threads=2))
    yield answers
    for thread in answers.app._threads:
        thread.shutdown(wait=True)


async def test_a_repeated_read_of_an_unchanged_chain_is_replayed_with_its_own_ts(cache: AnswerCache, fill: Any) -> None:
    await sync_to_async(fill)("SOL", limit_expiries=1)
    first = await get(cache, "/api/options/SOL/?type=call")
    replayed_before = cache_figures.replayed
    second = await get(cache, "/api/options/SOL/?type=call")

    assert cache_figures.replayed == replayed_before + 1
    assert first["status"] == second["status"] == 200
    assert without_moments(second["body"]) == without_moments(first["body"])
    assert orjson.loads(second["body"])["ts"] >= orjson.loads(first["body"])["ts"]
    headers = dict(second["headers"])
    assert {name: value for name, value in first["headers"] if name.lower() != b"content-length"}.items() <= {
        name: value for name, value in second["headers"]
    }.items()
    assert int(headers[b"content-length"]) == len(second["body"])


async def test_a_moved_revision_is_never_replayed(cache: AnswerCache, fill: Any, redis_client: Any) -> None:
    rows = await sync_to_async(fill)("SOL", limit_expiries=1)
    await get(cache, "/api/options/SOL/")
    changed = repriced(redis_client, rows[0], mark_price=123.25)
    replayed_before = cache_figures.replayed

    after = await get(cache, "/api/options/SOL/")
    served = {row["symbol"]: row for row in orjson.loads(after["body"])["data"]}
    assert served[changed["symbol"]]["mark_price"] == 123.25
    assert cache_figures.replayed == replayed_before
    # The new answer is kept in turn.
    again = await get(cache, "/api/options/SOL/")
    assert cache_figures.replayed == replayed_before + 1
    assert without_moments(again["body"]) == without_moments(after["body"])


async def test_csv_is_replayed_as_the_same_bytes(cache: AnswerCache, fill: Any) -> None:
    await sync_to_async(fill)("SOL", limit_expiries=1)
    as_curl = [(b"host", b"localhost"), (b"accept", b"*/*")]
    first = await get(cache, "/api/options/SOL/?format=csv", as_curl)
    replayed_before = cache_figures.replayed
    second = await get(cache, "/api/options/SOL/?format=csv", as_curl)
    assert cache_figures.replayed == replayed_before + 1
    assert second["body"] == first["body"]
    assert dict(second["headers"])[b"Content-Disposition"] == b'attachment; filename="SOL-options.csv"'


async def test_a_disabled_asset_is_not_served_from_the_cache(cache: AnswerCache, fill: Any) -> None:
    from assets.services import assets_set_enabled

    await sync_to_async(fill)("SOL", limit_expiries=1)
    assert (await get(cache, "/api/options/SOL/"))["status"] == 200
    await sync_to_async(assets_set_enabled)(symbols=["SOL"], enabled=False)
    assert (await get(cache, "/api/options/SOL/"))["status"] == 409


async def test_requests_with_credentials_or_another_accept_run_django(cache: AnswerCache, fill: Any) -> None:
    await sync_to_async(fill)("SOL", limit_expiries=1)
    await get(cache, "/api/options/SOL/")
    replayed_before = cache_figures.replayed
    for headers in (
        [*JSON, (b"cookie", b"sessionid=abc")],
        [*JSON, (b"authorization", b"Token abc")],
        [(b"host", b"localhost"), (b"accept", b"application/json; indent=2")],
        [(b"host", b"localhost"), (b"accept", b"text/html")],
    ):
        response = await get(cache, "/api/options/SOL/", headers)
        assert response["status"] in (200, 403)  # an unknown token is refused
    assert cache_figures.replayed == replayed_before
    # Not kept either: the plain request is still replayed from its own entry.
    await get(cache, "/api/options/SOL/")
    assert cache_figures.replayed == replayed_before + 1


async def test_a_replayed_request_counts_once_in_the_throttle_and_is_refused_by_it(
    cache: AnswerCache, fill: Any, monkeypatch: pytest.MonkeyPatch, redis_client: Any
) -> None:
    from optionsite.redis_client import redis_key

    await sync_to_async(fill)("SOL", limit_expiries=1)
    monkeypatch.setattr(AnonRedisRateThrottle, "THROTTLE_RATES", {"anon": "3/min"})
    replayed_before = cache_figures.replayed
    responses = [await get(cache, "/api/options/SOL/") for _ in range(4)]

    assert [response["status"] for response in responses] == [200, 200, 200, 429]
    assert cache_figures.replayed == replayed_before + 2
    assert b"Retry-After" in dict(responses[3]["headers"])
    counters = [redis_client.get(key) for key in redis_client.scan_iter(match=redis_key("throttle:anon:*"))]
    assert sum(int(count) for count in counters) == 4, "each request counted once, replayed or not"


async def test_requests_finding_the_chain_moved_together_share_one_answer_from_django(
    cache: AnswerCache, fill: Any, redis_client: Any
) -> None:
    rows = await sync_to_async(fill)("SOL", limit_expiries=1)
    await get(cache, "/api/options/SOL/")
    changed = repriced(redis_client, rows[0], mark_price=77.5)
    replayed_before, missed_before = cache_figures.replayed, cache_figures.missed

    responses = await asyncio.gather(*(get(cache, "/api/options/SOL/") for _ in range(6)))
    for response in responses:
        served = {row["symbol"]: row for row in orjson.loads(response["body"])["data"]}
        assert served[changed["symbol"]]["mark_price"] == 77.5
    assert cache_figures.missed - missed_before == 1, "one request went to Django"
    assert cache_figures.replayed - replayed_before == 5
