from __future__ import annotations

from typing import Any

from django.core.validators import MaxValueValidator, RegexValidator
from django.db import models

symbol_validator = RegexValidator(
    regex=r"^[A-Z0-9]{2,10}$",
    message="An asset symbol is 2 to 10 letters or digits, such as BTC or ETH.",
    code="invalid_symbol",
)

# A PositiveSmallIntegerField's limit on PostgreSQL and MySQL (a smallint); SQLite would store any 64-bit
# number, and Django bounds the field by the database it runs on, so the same request passed there.
DISPLAY_ORDER_MAX = 32767


class SymbolField(models.CharField):
    """A coin symbol, stored upper-case whichever way it was typed."""

    def to_python(self, value: Any) -> Any:
        value = super().to_python(value)
        return value.strip().upper() if isinstance(value, str) else value

    def get_prep_value(self, value: Any) -> Any:
        return self.to_python(super().get_prep_value(value))

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = self.to_python(super().pre_save(model_instance, add))
        setattr(model_instance, self.attname, value)
        return value


class AssetQuerySet(models.QuerySet["Asset"]):
    def enabled(self) -> AssetQuerySet:
        return self.filter(enabled=True)

    def update(self, **kwargs: Any) -> int:
        # A bulk update (the admin's enable/disable actions) bypasses post_save, yet the
        # running feed must hear of it: announce it here, once for the whole update.
        from assets.events import announce_assets_changed

        symbols = list(self.values_list("symbol", flat=True))
        count = super().update(**kwargs)
        if count:
            announce_assets_changed(action="updated", symbols=symbols)
        return count


class Asset(models.Model):
    symbol = SymbolField(
        max_length=10,
        unique=True,
        validators=[symbol_validator],
        help_text="Bybit base coin, e.g. BTC. Stored upper-case.",
        error_messages={"unique": "An asset with this symbol already exists."},
    )
    enabled = models.BooleanField(default=True, help_text="Whether the feed tracks this asset's options.")
    display_name = models.CharField(max_length=50, blank=True, help_text="Shown in the page's asset tabs.")
    display_order = models.PositiveSmallIntegerField(
        default=100, validators=[MaxValueValidator(DISPLAY_ORDER_MAX)], help_text="Lower comes first."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AssetQuerySet.as_manager()

    class Meta:
        ordering = ["display_order", "symbol"]

    def __str__(self) -> str:
        return self.symbol

    @property
    def label(self) -> str:
        return self.display_name or self.symbol
