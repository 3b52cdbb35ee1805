"""Every saved or deleted Asset, from wherever (admin, API, shell), announces the change."""

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from assets.events import announce_assets_changed
from assets.models import Asset


@receiver(post_save, sender=Asset, dispatch_uid="assets.saved")
def asset_saved(sender: type[Asset], instance: Asset, created: bool, raw: bool, **kwargs: Any) -> None:
    if raw:  # loaddata: fixtures are not a change made by anyone
        return
    announce_assets_changed(action="created" if created else "updated", symbols=[instance.symbol])


@receiver(post_delete, sender=Asset, dispatch_uid="assets.deleted")
def asset_deleted(sender: type[Asset], instance: Asset, **kwargs: Any) -> None:
    announce_assets_changed(action="deleted", symbols=[instance.symbol])
