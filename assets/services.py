"""Changes to the asset set. Each one announces itself (see ``assets.events``)."""

from __future__ import annotations

from collections.abc import Iterable

from assets.models import Asset


def assets_set_enabled(*, symbols: Iterable[str], enabled: bool) -> int:
    """Enable or disable the named assets in one update; returns how many changed."""
    normalised = [symbol.strip().upper() for symbol in symbols]
    return Asset.objects.filter(symbol__in=normalised).exclude(enabled=enabled).update(enabled=enabled)
