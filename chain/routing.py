"""WebSocket routes of the live chain (filled in by the live-chain consumer)."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
