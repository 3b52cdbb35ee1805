"""The browser's pages: ``/`` (→ the first enabled asset) and the live chain ``/chain/<ASSET>/``.

The page is static HTML plus ``chain/static/chain/*.js``; the data comes over the WebSocket
(``chain.consumers``), and the other assets' index prices and this asset's feed lag from
``/chain/indexes.json``, which the page reads every 5 s.
"""

from __future__ import annotations

from dataclasses import asdict

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from assets.models import Asset
from chain.live import asset_tabs, listed_expiries


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
    tabs = asset_tabs()
    config = {
        "asset": symbol,
        "socket_path": f"/ws/chain/{symbol}/",
        "indexes_url": reverse("chain-indexes"),
        # Data older than this, or a lag p99 past it, is not "live" (ingest.status.FeedStatus.stale_reason).
        "stale_after_ms": int(settings.FEED_STALE_AFTER * 1000),
        "assets": [asdict(tab) for tab in tabs],
        "expiries": listed_expiries(asset=symbol),
    }
    return render(request, "chain/page.html", {"asset": found, "tabs": tabs, "config": config})


def asset_indexes(request: HttpRequest) -> JsonResponse:
    """The enabled assets' index prices, feed states and lags, for the page's asset tabs and indicator."""
    return JsonResponse({"assets": [asdict(tab) for tab in asset_tabs()]})
