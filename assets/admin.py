from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from assets.models import Asset
from assets.services import assets_set_enabled


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ("symbol", "display_name", "enabled", "display_order", "updated_at")
    list_display_links = ("symbol",)
    list_editable = ("enabled", "display_order")
    list_filter = ("enabled",)
    search_fields = ("symbol", "display_name")
    readonly_fields = ("created_at", "updated_at")
    actions = ("enable_assets", "disable_assets")

    @admin.action(description="Enable selected assets", permissions=["change"])
    def enable_assets(self, request: HttpRequest, queryset: QuerySet[Asset]) -> None:
        self._set_enabled(request, queryset, enabled=True)

    @admin.action(description="Disable selected assets", permissions=["change"])
    def disable_assets(self, request: HttpRequest, queryset: QuerySet[Asset]) -> None:
        self._set_enabled(request, queryset, enabled=False)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Asset], *, enabled: bool) -> None:
        symbols = list(queryset.values_list("symbol", flat=True))
        changed = assets_set_enabled(symbols=symbols, enabled=enabled)
        state = "enabled" if enabled else "disabled"
        self.message_user(request, f"{changed} asset(s) {state}.", messages.SUCCESS)
