"""The browser's pages: ``/`` (→ the first enabled asset) and the live chain ``/chain/<ASSET>/``.

The page is static HTML plus ``chain/static/chain/*.js``; the data comes over the WebSocket
(``chain.consumers``), and the other assets' index prices and this asset's feed lag from
``/chain/indexes.json``, which the page reads every 5 s. While Redis cannot be reached both answer
503 with ``Retry-After``, the page with one that reloads itself (docs/websocket.md, "Redis unreachable").
"""

from __future__ import annotations

from dataclasses import asdict

import redis
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from assets.models import Asset
from chain.tabs import asset_tabs, listed_expiries
from chain.unavailable import REDIS_UNAVAILABLE, log_unavailable

# How soon to ask again while Redis is unreachable: the page's WebSocket backs off to 5-10 s too.
RETRY_AFTER_SECONDS = 10


def home(request: HttpRequest) -> HttpResponse:
    first = Asset.objects.enabled().first()
    if first is None:
        return render(request, "chain/no_assets.html")
    return redirect("chain-page", asset=first.symbol)


def chain_page(request: HttpRequest, asset: str) -> HttpResponse:
    symbol = asset.strip().upper()
    found = Asset.objects.filter(symbol=symbol).first()
    if found is None:
        raise Http404(f"No asset {symbol} is configured.")
    if not found.enabled:
        raise Http404(f"{symbol} is disabled; staff can enable it in the admin.")
    if asset != symbol:
        return redirect("chain-page", asset=symbol)
    try:
        tabs = asset_tabs()
        expiries = listed_expiries(asset=symbol)
    except redis.RedisError:
        return data_unavailable(request, asset=symbol)
    config = {
        "asset": symbol,
        "socket_path": f"/ws/chain/{symbol}/",
        "indexes_url": reverse("chain-indexes"),
        # Data older than this, or a lag p99 past it, is not "live" (ingest.status.FeedStatus.stale_reason).
        "stale_after_ms": int(settings.FEED_STALE_AFTER * 1000),
        "assets": [asdict(tab) for tab in tabs],
        "expiries": expiries,
    }
    return render(request, "chain/page.html", {"asset": found, "tabs": tabs, "config": config})


def asset_indexes(request: HttpRequest) -> JsonResponse:
    """The enabled assets' index prices, feed states and lags, for the page's asset tabs and indicator."""
    try:
        tabs = asset_tabs()
    except redis.RedisError as exc:
        # The API's answer to the same outage (chain.exceptions); the page skips a failed poll.
        log_unavailable(service="Redis", error=exc)
        unavailable = JsonResponse({"detail": REDIS_UNAVAILABLE}, status=503)
        unavailable["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return unavailable
    return JsonResponse({"assets": [asdict(tab) for tab in tabs]})


def data_unavailable(request: HttpRequest, *, asset: str) -> HttpResponse:
    """503 and a page that says the chain's data cannot be read now and reloads itself until it can."""
    context = {"asset": asset, "retry_after": RETRY_AFTER_SECONDS}
    response = render(request, "chain/unavailable.html", context, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
