from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

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

    def response_action(self, request: HttpRequest, queryset: QuerySet[Asset], *args: Any) -> HttpResponse | None:
        # The admin looks the selected rows up by primary key as sent: a forged value that is no id raised
        # ValueError in the lookup, a 500. The form only ever sends ids.
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if not all(value.isascii() and value.isdigit() for value in selected):
            return HttpResponseBadRequest("The selected assets must be given by their ids.")
        return super().response_action(request, queryset, *args)

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
