"""Writes of the ingest into Redis (layout in ``ingest.keys`` and docs/redis.md).

Every function takes the client and issues a constant number of round-trips, whatever
the number of contracts: one pipeline per call.
"""

from __future__ import annotations

import secrets
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass

import orjson
import redis

from ingest.keys import (
    analytics_key,
    chain_key,
    chain_revision_key,
    contract_key,
    contracts_key,
    expiries_key,
    feed_status_key,
    strikes_key,
    tracked_assets_key,
)
from ingest.normalize import TICKER_FIELDS, ContractRow, contract_hash_arguments, hash_text, static_row
from ingest.symbols import OptionContract
from optionsite.redis_client import RedisCommand, texts

# A contract hash nobody refreshes (its feed stopped without cleaning up, e.g. kill -9
# of every worker) disappears by itself after this long. Feeds renew it every
# CONTRACT_TTL_RENEW_SECONDS, not at every write.
CONTRACT_TTL_SECONDS = 6 * 3600
CONTRACT_TTL_RENEW_SECONDS = 600


@dataclass(frozen=True)
class InstrumentChange:
    listed: list[ContractRow]
    delivered: list[str]


def sync_instruments(client: redis.Redis, *, asset: str, contracts: Iterable[OptionContract]) -> InstrumentChange:
    """Make the asset's indexes list exactly ``contracts``; drop the data of the rest.

    New contracts get a row with no quotes yet, so that they show up before their first
    ticker; contracts no longer listed (delivered) lose their hash and their row.
    """
    current = {contract.symbol: contract for contract in contracts}
    known = set(texts(client.smembers(contracts_key(asset))))
    old_expiries = set(texts(client.zrange(expiries_key(asset), 0, -1)))
    listed = [static_row(current[symbol]) for symbol in sorted(current.keys() - known)]
    delivered = sorted(known - current.keys())

    strikes: dict[str, dict[str, float]] = {}
    delivery_ms: dict[str, int] = {}
    for contract in current.values():
        row = static_row(contract)
        strikes.setdefault(row["expiry"], {})[row["strike_text"]] = row["strike"]
        delivery_ms[row["expiry"]] = row["delivery_ms"]

    pipe = client.pipeline(transaction=True)
    pipe.sadd(tracked_assets_key(), asset)
    if delivered:
        pipe.srem(contracts_key(asset), *delivered)
        pipe.hdel(chain_key(asset), *delivered)
        pipe.delete(*(contract_key(symbol) for symbol in delivered))
    if listed:
        pipe.sadd(contracts_key(asset), *(row["symbol"] for row in listed))
        pipe.hset(chain_key(asset), mapping={row["symbol"]: orjson.dumps(row) for row in listed})
    if listed or delivered:
        new_chain_revision(pipe, asset=asset)
    gone_expiries = old_expiries - delivery_ms.keys()
    if gone_expiries:
        pipe.zrem(expiries_key(asset), *gone_expiries)
    for expiry in gone_expiries | delivery_ms.keys():
        pipe.delete(strikes_key(asset, expiry))
    if delivery_ms:
        pipe.zadd(expiries_key(asset), delivery_ms)
    for expiry, by_text in strikes.items():
        pipe.zadd(strikes_key(asset, expiry), by_text)
    pipe.execute()
    return InstrumentChange(listed=listed, delivered=delivered)


def write_rows(
    pipe: redis.client.Pipeline,
    *,
    asset: str,
    rows: Iterable[ContractRow],
    previous: Mapping[str, ContractRow] | None = None,
    renew_ttl: Container[str] = (),
    contract_hashes: bool = False,
) -> int:
    """Queue the rows' chain entries (and contract hashes) on ``pipe``; returns how many.

    The feed sends the same commands with ``execute_packed`` (``row_commands``); this is for
    everything else that writes rows (tests, benchmarks, scripts).
    """
    rows = list(rows)
    commands = row_commands(
        asset=asset, rows=rows, previous=previous, renew_ttl=renew_ttl, contract_hashes=contract_hashes
    )
    for command in commands:
        pipe.execute_command(*command)
    return len(rows)


def row_commands(
    *,
    asset: str,
    rows: Iterable[ContractRow],
    previous: Mapping[str, ContractRow] | None = None,
    renew_ttl: Container[str] = (),
    contract_hashes: bool = False,
    rows_json: Iterable[bytes] | None = None,
) -> list[RedisCommand]:
    """The commands that store ``rows``: the chain entries and a new revision, after the
    contract hashes when ``contract_hashes`` (``FEED_CONTRACT_HASHES``) asks for them.
    ``rows_json``: the rows as JSON, when the caller has written them already (the flusher
    sends the same JSON in its ``chain.update``).

    The hashes copy the chain entries field by field, for scripts that read single fields;
    they cost ~20 of a flush's ~26 us per row (docs/benchmarks.md), hence opt-in. With
    ``previous`` (the rows as Redis holds them), a contract hash gets only the fields that
    changed; a contract written for the first time gets every field and its TTL;
    ``renew_ttl`` names the others whose TTL is due.
    """
    previous = previous or {}
    commands: list[RedisCommand] = []
    chain: list[str | bytes] = ["HSET", chain_key(asset)]
    key_prefix = contract_key("")  # read the setting once, not once per row
    rows = list(rows)
    encoded = [orjson.dumps(row) for row in rows] if rows_json is None else rows_json
    for row, row_json in zip(rows, encoded, strict=True):
        symbol = row["symbol"]
        chain += (symbol, row_json)
        if not contract_hashes:
            continue
        key = key_prefix + symbol
        before = previous.get(symbol)
        if before is None or before["ts"] is None:
            commands.append(("HSET", key, *contract_hash_arguments(row.items())))
            commands.append(("EXPIRE", key, CONTRACT_TTL_SECONDS))
        else:
            # A contract's identity never changes: only its ticker fields are compared.
            arguments: list[str] = ["HSET", key]
            for name in TICKER_FIELDS:
                value = row[name]  # type: ignore[literal-required]
                if value != before[name]:  # type: ignore[literal-required]
                    arguments += (name, hash_text(value))
            if len(arguments) > 2:
                commands.append(tuple(arguments))
            if symbol in renew_ttl:
                commands.append(("EXPIRE", key, CONTRACT_TTL_SECONDS))
    if len(chain) > 2:
        commands.append(tuple(chain))
        commands.append(chain_revision_command(asset=asset))
    return commands


def chain_revision_command(*, asset: str) -> RedisCommand:
    """A new revision token for the asset's chain; see ``new_chain_revision``."""
    return ("SET", chain_revision_key(asset), secrets.token_hex(8))


def new_chain_revision(pipe: redis.client.Pipeline, *, asset: str) -> None:
    """Queue a new revision token for the asset's chain, after the commands that change it.

    Queued after them on the same pipeline, it reaches Redis after them: a reader that sees
    the new token sees the change too. A random token, not a counter, so that a chain
    deleted and written again cannot come back to a revision a reader still holds.
    """
    pipe.execute_command(*chain_revision_command(asset=asset))


def feed_status_command(*, asset: str, status: Mapping[str, str | int | float]) -> RedisCommand:
    return ("HSET", feed_status_key(asset), *(item for pair in status.items() for item in pair))


def write_feed_status(pipe: redis.client.Pipeline, *, asset: str, status: Mapping[str, str | int | float]) -> None:
    pipe.execute_command(*feed_status_command(asset=asset, status=status))


def purge_asset(client: redis.Redis, *, asset: str) -> None:
    """Remove everything the ingest keeps about ``asset`` (it was disabled or deleted)."""
    symbols = texts(client.smembers(contracts_key(asset)))
    expiries = texts(client.zrange(expiries_key(asset), 0, -1))
    pipe = client.pipeline(transaction=True)
    for start in range(0, len(symbols), 1000):
        pipe.delete(*(contract_key(symbol) for symbol in symbols[start : start + 1000]))
    for expiry in expiries:
        pipe.delete(strikes_key(asset, expiry))
    pipe.delete(
        chain_key(asset),
        chain_revision_key(asset),
        contracts_key(asset),
        expiries_key(asset),
        feed_status_key(asset),
        analytics_key(asset),
    )
    pipe.srem(tracked_assets_key(), asset)
    pipe.execute()
