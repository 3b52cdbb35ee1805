"""Changes to the asset set, from the admin, the API or the shell.

Each one saves or deletes through the model, so the signals in ``assets.signals`` (or
``AssetQuerySet.update`` for bulk changes) announce it as the "assets changed" event.
"""

from __future__ import annotations

from collections.abc import Iterable

from assets.models import Asset


def assets_set_enabled(*, symbols: Iterable[str], enabled: bool) -> int:
    """Enable or disable the named assets in one update; returns how many changed."""
    normalised = [symbol.strip().upper() for symbol in symbols]
    return Asset.objects.filter(symbol__in=normalised).exclude(enabled=enabled).update(enabled=enabled)


def asset_create(*, symbol: str, enabled: bool = True, display_name: str = "", display_order: int = 100) -> Asset:
    """A new asset; ``ValidationError`` if the symbol is malformed or taken."""
    asset = Asset(symbol=symbol, enabled=enabled, display_name=display_name, display_order=display_order)
    asset.full_clean()
    asset.save()
    return asset


def asset_update(
    *,
    asset: Asset,
    enabled: bool | None = None,
    display_name: str | None = None,
    display_order: int | None = None,
) -> Asset:
    """Change the given fields (``None`` leaves one as it is); saves, and announces, only a real change."""
    changes = {"enabled": enabled, "display_name": display_name, "display_order": display_order}
    changed = [name for name, value in changes.items() if value is not None and getattr(asset, name) != value]
    if not changed:
        return asset
    for name in changed:
        setattr(asset, name, changes[name])
    asset.full_clean()
    asset.save(update_fields=[*changed, "updated_at"])
    return asset


def asset_toggle(*, asset: Asset) -> Asset:
    """Enable a disabled asset, disable an enabled one."""
    return asset_update(asset=asset, enabled=not asset.enabled)


def asset_delete(*, asset: Asset) -> None:
    asset.delete()
