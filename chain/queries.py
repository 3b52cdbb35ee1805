"""What each API route answers, built from one Redis read (``chain.readers``) and the rows' logic
(``chain.filters``). Every function returns the response body as plain data.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson
import psutil
from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from assets.events import assets_version_key
from assets.models import Asset
from chain.answer_cache import cache_figures
from chain.exceptions import AssetDisabled, UnknownAsset, UnknownExpiry
from chain.filters import (
    RowFilter,
    atm_strike,
    filter_rows,
    forward_price,
    order_rows,
    seconds_to_expiry,
    years_to_expiry,
)
from chain.readers import (
    StoredAnalyticsFields,
    now_ms,
    read_analytics,
    read_chain,
    read_listed_contracts,
    read_redis_stats,
    read_strikes,
)
from chain.rows import Row, RowView
from ingest.keys import ANALYTICS_ASSET_FIELD, analytics_expiry_field, chosen_analytics_field
from ingest.status import FeedStatus
from ingest.symbols import SettleCoin, SymbolError, parse_symbol
from optionsite.handlers import queue_figures
from optionsite.redis_client import redis_connection

_PROCESS_STARTED = psutil.Process().create_time()


# The asset set changes rarely, and every change bumps ``assets:version`` (``assets.events``):
# each process keeps the enabled flags and re-reads them from the database only when the
# version moved, when an asset is saved or deleted in this process, or after
# ASSET_STATES_MAX_AGE seconds (an announcement lost with Redis down). Under daphne every
# request runs in a new thread, i.e. would open a new database connection for one query.
ASSET_STATES_MAX_AGE = 5.0
_asset_states: tuple[int, float, dict[str, bool]] | None = None


def _versioned_asset_states() -> tuple[int, dict[str, bool]]:
    """Symbol → enabled, for every configured asset, and the ``assets:version`` they hold for."""
    global _asset_states
    version = int(redis_connection().get(assets_version_key()) or 0)
    now = time.monotonic()
    cached = _asset_states
    if cached is not None and cached[0] == version and now - cached[1] < ASSET_STATES_MAX_AGE:
        return version, cached[2]
    states = dict(Asset.objects.values_list("symbol", "enabled"))
    _asset_states = (version, now, states)
    return version, states


@receiver(post_save, sender=Asset, dispatch_uid="chain.forget_asset_states.saved")
@receiver(post_delete, sender=Asset, dispatch_uid="chain.forget_asset_states.deleted")
def forget_asset_states(**kwargs: Any) -> None:
    global _asset_states
    _asset_states = None


def served_asset(*, symbol: str) -> str:
    """The asset's canonical symbol; ``UnknownAsset`` if not configured, ``AssetDisabled`` if disabled."""
    return served_asset_at(symbol=symbol)[0]


def served_asset_at(*, symbol: str) -> tuple[str, int]:
    """``served_asset(symbol)`` and the ``assets:version`` it was decided at."""
    canonical = symbol.strip().upper()
    version, states = _versioned_asset_states()
    enabled = states.get(canonical)
    if enabled is None:
        raise UnknownAsset(canonical)
    if not enabled:
        raise AssetDisabled(canonical)
    return canonical, version


def feed_summary(status: FeedStatus | None, *, now_ms: int) -> dict[str, Any]:
    """The feed's state as every data route reports it, so that stale data never passes for live data."""
    if status is None:
        return {"state": None, "fresh": False, "data_age": None, "last_message_age": None}
    data_age = status.data_age(now_ms)
    last_message_age = status.last_message_age(now_ms)
    return {
        "state": status.state,
        "fresh": status.is_fresh(stale_after=settings.FEED_STALE_AFTER, now_ms=now_ms),
        "data_age": None if data_age is None else round(data_age, 3),
        "last_message_age": None if last_message_age is None else round(last_message_age, 3),
    }


def options_page(*, asset: str, row_filter: RowFilter) -> tuple[dict[str, Any], bytes | None]:
    """``/api/options/<ASSET>/``: the chain's rows, filtered and ordered, in the seed users' envelope; and the
    chain revision the rows hold for (``None`` when Redis has none)."""
    snapshot = read_chain(redis_connection(), asset=asset)
    view = snapshot.chain.view(
        row_filter,
        lambda rows: order_rows(filter_rows(rows, row_filter=row_filter), ordering=row_filter.ordering),
    )
    answer = options_answer(asset=asset, view=view, feed=snapshot.feed, now_ms=snapshot.now_ms)
    return answer, snapshot.chain.revision


def options_answer(*, asset: str, view: RowView, feed: FeedStatus | None, now_ms: int) -> dict[str, Any]:
    """The options envelope of ``view``'s rows at ``now_ms``: the rows are the same bytes for every request
    while the chain is unchanged, the feed's state and ``ts`` are the request's."""
    return {"asset": asset, "total": len(view), "ts": now_ms, "feed": feed_summary(feed, now_ms=now_ms), "data": view}


def chain_table(*, asset: str, expiry: str | None, settle: SettleCoin | None) -> dict[str, Any]:
    """``/api/chain/<ASSET>/``: one expiry as traders read it, call and put side by side per strike.

    Without ``expiry``, the nearest one not yet delivered; without ``settle``, USDT when the
    expiry has USDT contracts, else USDC.
    """
    snapshot = read_chain(redis_connection(), asset=asset)
    now = snapshot.now_ms
    deliveries = dict(snapshot.expiries)
    if expiry is None:
        upcoming = [code for code, delivery in snapshot.expiries if delivery > now]
        expiry = upcoming[0] if upcoming else (snapshot.expiries[-1][0] if snapshot.expiries else None)
    elif expiry not in deliveries:
        raise UnknownExpiry(asset, expiry)
    in_expiry = [row for row in snapshot.chain.rows if row["expiry"] == expiry]
    settles = sorted({row["settle"] for row in in_expiry})
    if settle is None:
        settle = "USDT" if "USDT" in settles or not settles else settles[0]
    rows = [row for row in in_expiry if row["settle"] == settle]

    by_strike: dict[float, dict[str, Any]] = {}
    for row in rows:
        by_strike.setdefault(row["strike"], {"strike": row["strike"], "call": None, "put": None})[row["type"]] = row
    strikes = sorted(by_strike)
    forward = forward_price(rows)
    delivery_ms = deliveries.get(expiry) if expiry is not None else None
    return {
        "asset": asset,
        "expiry": expiry,
        **_expiry_times(delivery_ms, now_ms=now),
        "settle": settle,
        "settles": settles,
        "forward": forward,
        "index_price": _index_price(in_expiry, snapshot.feed),
        "atm_strike": atm_strike(strikes, forward),
        "total": len(strikes),
        "ts": now,
        "feed": feed_summary(snapshot.feed, now_ms=now),
        "data": [by_strike[strike] for strike in strikes],
    }


def expiry_list(*, asset: str) -> dict[str, Any]:
    """``/api/expiries/<ASSET>/``: expiries in delivery order, with their contract counts per settle coin."""
    listed = read_listed_contracts(redis_connection(), asset=asset)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"USDT": 0, "USDC": 0})
    for symbol in listed.symbols:
        try:
            contract = parse_symbol(symbol)
        except SymbolError:
            continue
        counts[contract.expiry_code][contract.settle] += 1
    data = [
        {
            "expiry": code,
            **_expiry_times(delivery_ms, now_ms=listed.now_ms),
            "contracts": sum(counts[code].values()),
            "contracts_by_settle": counts[code],
        }
        for code, delivery_ms in listed.expiries
    ]
    return {
        "asset": asset,
        "total": len(data),
        "feed": feed_summary(listed.feed, now_ms=listed.now_ms),
        "data": data,
    }


def strike_list(*, asset: str, expiry: str) -> dict[str, Any]:
    """``/api/strikes/<ASSET>/?expiry=``: the expiry's strikes in numeric order (both settle coins)."""
    listed = read_strikes(redis_connection(), asset=asset, expiry=expiry)
    if listed.delivery_ms is None:
        raise UnknownExpiry(asset, expiry)
    return {
        "asset": asset,
        "expiry": expiry,
        **_expiry_times(listed.delivery_ms, now_ms=listed.now_ms),
        "total": len(listed.strikes),
        "feed": feed_summary(listed.feed, now_ms=listed.now_ms),
        "data": listed.strikes,
    }


def chain_summary(*, asset: str, settle: SettleCoin | None) -> dict[str, Any]:
    """``/api/summary/<ASSET>/``: counts, open interest and volume, put/call ratios, ATM IV per expiry."""
    snapshot = read_chain(redis_connection(), asset=asset)
    now = snapshot.now_ms
    rows = [row for row in snapshot.chain.rows if settle is None or row["settle"] == settle]
    by_expiry: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_expiry[row["expiry"]].append(row)
    by_settle = {"USDT": 0, "USDC": 0}
    for row in rows:
        by_settle[row["settle"]] += 1

    expiries = []
    for code, group in sorted(by_expiry.items(), key=lambda item: item[1][0]["delivery_ms"]):
        forward = forward_price(group)
        atm = atm_strike(sorted({row["strike"] for row in group}), forward)
        atm_ivs = [row["mark_iv"] for row in group if row["strike"] == atm and row["mark_iv"] is not None]
        expiries.append(
            {
                "expiry": code,
                **_expiry_times(group[0]["delivery_ms"], now_ms=now),
                **_totals(group),
                "forward": forward,
                "atm_strike": atm,
                "atm_mark_iv": round(sum(atm_ivs) / len(atm_ivs), 6) if atm_ivs else None,
            }
        )
    return {
        "asset": asset,
        "settle": settle,
        "index_price": _index_price(rows, snapshot.feed),
        **_totals(rows),
        "contracts_by_settle": by_settle,
        "expiries": expiries,
        "feed": feed_summary(snapshot.feed, now_ms=now),
    }


def asset_analytics_page(*, asset: str, settle: SettleCoin | None) -> dict[str, Any]:
    """``/api/analytics/<ASSET>/``: the asset's analytics as the feed last published them (docs/analytics.md);
    with ``settle``, that coin's expiries and term structure only, and no ``totals`` (they add both coins)."""
    stored = read_analytics(redis_connection(), asset=asset, fields=[ANALYTICS_ASSET_FIELD])
    raw = stored.fields.get(ANALYTICS_ASSET_FIELD)
    analytics = None if raw is None else orjson.loads(raw)
    if analytics is not None and settle is not None:
        analytics["expiries"] = [summary for summary in analytics["expiries"] if summary["settle"] == settle]
        analytics["term_structures"] = [term for term in analytics["term_structures"] if term["settle"] == settle]
        analytics["totals"] = None
    return _analytics_answer(stored, settle=settle, analytics=analytics)


def expiry_analytics_page(*, asset: str, expiry: str, settle: SettleCoin | None) -> dict[str, Any]:
    """``/api/analytics/<ASSET>/<EXPIRY>/``: one expiry's analytics with its by-strike series, for ``settle``
    or, without it, USDT when the expiry has USDT contracts, else USDC (as ``/api/chain/``)."""
    fields = [analytics_expiry_field(expiry, "USDT"), analytics_expiry_field(expiry, "USDC")]
    stored = read_analytics(redis_connection(), asset=asset, fields=fields, expiry=expiry)
    if stored.delivery_ms is None:
        raise UnknownExpiry(asset, expiry)
    field_name = chosen_analytics_field(expiry, settle, stored=stored.fields)
    settle = "USDC" if field_name.endswith("/USDC") else "USDT"
    raw = stored.fields.get(field_name)
    answer = _analytics_answer(stored, settle=settle, analytics=None if raw is None else orjson.loads(raw))
    return {"asset": asset, "expiry": expiry, **answer}


def _analytics_answer(
    stored: StoredAnalyticsFields, *, settle: SettleCoin | None, analytics: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "asset": stored.asset,
        "settle": settle,
        "ts": stored.now_ms,
        "computed_ts": stored.ts,
        "feed": feed_summary(stored.feed, now_ms=stored.now_ms),
        # None until the asset's feed first published them (or when the expiry has no contract of ``settle``).
        "analytics": analytics,
    }


def site_stats() -> dict[str, Any]:
    """``/api/stats/``: per configured asset its contract count and feed figures; Redis and process figures."""
    configured = list(Asset.objects.values_list("symbol", "enabled"))
    stats = read_redis_stats(redis_connection(), assets=[symbol for symbol, _ in configured])
    now = now_ms()
    assets = []
    for (symbol, enabled), counts in zip(configured, stats.assets, strict=True):
        feed = counts.feed
        assets.append(
            {
                "asset": symbol,
                "enabled": enabled,
                "contracts": counts.contracts,
                "feed": {
                    **feed_summary(feed, now_ms=now),
                    "messages_per_second": feed.messages_per_second if feed else None,
                    "messages_total": feed.messages_total if feed else None,
                    "reconnects": feed.reconnects if feed else None,
                    "rejected_frames": feed.rejected_frames if feed else None,
                    "connections": feed.connections if feed else None,
                    "subscribed": feed.subscribed if feed else None,
                    "lag_p50_ms": feed.lag_p50_ms if feed else None,
                    "lag_p99_ms": feed.lag_p99_ms if feed else None,
                    "uptime_seconds": round((now - feed.started_ts) / 1000, 3) if feed and feed.started_ts else None,
                },
            }
        )
    return {
        "uptime_seconds": round(now / 1000 - _PROCESS_STARTED, 3),
        "web": {
            "pid": os.getpid(),
            "threads": settings.HTTP_THREADS,
            "queue_limit": settings.HTTP_QUEUE_LIMIT,
            "queue_timeout": settings.HTTP_QUEUE_TIMEOUT,
            "waiting": queue_figures.waiting,
            "shed_full": queue_figures.shed_full,
            "shed_waited": queue_figures.shed_waited,
            "replayed": cache_figures.replayed,
            "replay_missed": cache_figures.missed,
        },
        "redis": {
            "version": stats.version,
            "used_memory": stats.used_memory,
            "used_memory_human": stats.used_memory_human,
            "maxmemory": stats.maxmemory,
            "uptime_seconds": stats.uptime_seconds,
        },
        "assets": assets,
    }


def _expiry_times(delivery_ms: int | None, *, now_ms: int) -> dict[str, Any]:
    if delivery_ms is None:
        return {"expiry_at": None, "seconds_to_expiry": None, "years_to_expiry": None}
    return {
        "expiry_at": datetime.fromtimestamp(delivery_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds_to_expiry": seconds_to_expiry(delivery_ms, now_ms=now_ms),
        "years_to_expiry": years_to_expiry(delivery_ms, now_ms=now_ms),
    }


def _index_price(rows: list[Row], feed: FeedStatus | None) -> float | None:
    """The latest index price the rows carry, else the feed's."""
    latest: tuple[int, float] | None = None
    for row in rows:
        if row["index_price"] is not None and (latest is None or (row["ts"] or 0) > latest[0]):
            latest = (row["ts"] or 0, row["index_price"])
    if latest is not None:
        return latest[1]
    return feed.index_price if feed and feed.index_price > 0 else None


def _totals(rows: list[Row]) -> dict[str, Any]:
    """Counts by type; open interest and 24 h volume by type; put/call ratios (``None`` without calls)."""
    calls = puts = 0
    oi = {"call": 0.0, "put": 0.0}
    volume = {"call": 0.0, "put": 0.0}
    for row in rows:
        side = row["type"]
        if side == "call":
            calls += 1
        else:
            puts += 1
        oi[side] += row["open_interest"] or 0.0
        volume[side] += row["volume_24h"] or 0.0
    return {
        "contracts": calls + puts,
        "calls": calls,
        "puts": puts,
        "open_interest": {**_rounded(oi), "total": round(oi["call"] + oi["put"], 8)},
        "volume_24h": {**_rounded(volume), "total": round(volume["call"] + volume["put"], 8)},
        "put_call_ratio": {
            "open_interest": round(oi["put"] / oi["call"], 6) if oi["call"] else None,
            "volume_24h": round(volume["put"] / volume["call"], 6) if volume["call"] else None,
        },
    }


def _rounded(values: dict[str, float]) -> dict[str, float]:
    # Sums of floats drift (0.1 + 0.2); contract quantities never need more than 8 decimals.
    return {key: round(value, 8) for key, value in values.items()}
