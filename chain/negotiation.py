"""Content negotiation that answers an unknown ``?format=`` with 400, not DRF's bare 404."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import Http404
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class FormatNegotiation(DefaultContentNegotiation):
    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderers = list(renderers)
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except Http404:
            formats = ", ".join(renderer.format for renderer in renderers if renderer.format)
            requested: Any = format_suffix or request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
            raise ValidationError({"format": [f"unknown format {requested!r}; use one of {formats}"]}) from None
