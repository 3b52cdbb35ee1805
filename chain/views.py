"""The chain's REST routes. Each view validates its query, calls one function of ``chain.queries``, returns."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, permission_classes, throttle_classes
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from chain import serializers
from chain.answer_cache import offer_replay
from chain.filters import RowFilter
from chain.health import health_report, readiness_problems
from chain.queries import (
    asset_analytics_page,
    chain_summary,
    chain_table,
    expiry_analytics_page,
    expiry_list,
    options_page,
    served_asset,
    served_asset_at,
    site_stats,
    strike_list,
)
from chain.renderers import CSVRenderer, ORJSONRenderer, ShortBrowsableAPIRenderer

_BAD_QUERY = OpenApiResponse(OpenApiTypes.OBJECT, description="A parameter is malformed: {field: [reason, ...]}.")
_UNKNOWN = OpenApiResponse(serializers.ErrorSerializer, description="No such asset (or expiry).")
_DISABLED = OpenApiResponse(
    serializers.AssetDisabledSerializer, description="The asset is disabled: its feed is stopped, no data is served."
)
_REDIS_DOWN = OpenApiResponse(serializers.ErrorSerializer, description="Redis does not answer.")
_ASSET = OpenApiParameter(
    "asset",
    str,
    OpenApiParameter.PATH,
    description="A configured asset (see /api/assets/), any case: BTC, btc. The trailing slash is optional.",
    examples=[OpenApiExample("BTC", value="BTC"), OpenApiExample("eth", value="eth")],
)
# Errors are JSON objects on every route, CSV asked for or not.
_ASSET_ERRORS = {
    (400, "application/json"): _BAD_QUERY,
    (404, "application/json"): _UNKNOWN,
    (409, "application/json"): _DISABLED,
    (503, "application/json"): _REDIS_DOWN,
}


def validated_query(request: Request, serializer_class: type[Serializer]) -> Mapping[str, Any]:
    """The request's query parameters, validated by ``serializer_class``; ``ValidationError`` if bad.

    Validation depends on the query parameters alone, and a DRF serializer deep-copies its fields
    for every instance, so each process validates given parameters once (the full chain's
    clients repeat theirs). Refused parameters are not remembered.
    """
    parameters = tuple((name, tuple(values)) for name, values in request.query_params.lists())
    return _validated_query(serializer_class, parameters)


@functools.lru_cache(maxsize=512)
def _validated_query(
    serializer_class: type[Serializer], parameters: tuple[tuple[str, tuple[str, ...]], ...]
) -> Mapping[str, Any]:
    data = QueryDict(mutable=True)
    for name, values in parameters:
        data.setlist(name, list(values))
    query = serializer_class(data=data)
    query.is_valid(raise_exception=True)
    return MappingProxyType(dict(query.validated_data))


@extend_schema(exclude=True)
@api_view(["GET"])
def api_root(request: Request) -> Response:
    """Where to go from here. ``{asset}`` stands for a symbol from ``assets``, e.g. BTC."""

    def link(name: str, **kwargs: str) -> str:
        return reverse(name, kwargs=kwargs or None, request=request).replace("ASSET", "{asset}")

    return Response(
        {
            "assets": link("api-assets"),
            "options": link("api-options", asset="ASSET"),
            "chain": link("api-chain", asset="ASSET"),
            "expiries": link("api-expiries", asset="ASSET"),
            "strikes": link("api-strikes", asset="ASSET"),
            "summary": link("api-summary", asset="ASSET"),
            "analytics": link("api-analytics", asset="ASSET"),
            "stats": link("api-stats"),
            "health": link("api-health"),
            "health_live": link("api-health-live"),
            "health_ready": link("api-health-ready"),
            "token": link("api-token"),
            "schema": link("api-schema"),
            "docs": link("api-docs"),
        }
    )


class OptionsView(APIView):
    """Every contract of the asset as a flat row; filters combine (AND). ``?format=csv`` for CSV."""

    renderer_classes = [ORJSONRenderer, ShortBrowsableAPIRenderer, CSVRenderer]

    @extend_schema(
        operation_id="options_list",
        parameters=[_ASSET, serializers.OptionsQuerySerializer],
        responses={
            (200, "application/json"): serializers.OptionsPageSerializer,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The rows as CSV, one header line."),
            **_ASSET_ERRORS,
        },
    )
    def get(self, request: Request, asset: str) -> Response:
        symbol, assets_version = served_asset_at(symbol=asset)
        query = validated_query(request, serializers.OptionsQuerySerializer)
        answer, revision = options_page(asset=symbol, row_filter=RowFilter(**query))
        offer_replay(request, asset=symbol, view=answer["data"], revision=revision, assets_version=assets_version)
        return Response(answer)

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        # An error is a JSON object even when CSV was asked for: a CSV of no rows would hide it.
        if response.status_code >= 400 and isinstance(getattr(response, "accepted_renderer", None), CSVRenderer):
            response.accepted_renderer = ORJSONRenderer()
            response.accepted_media_type = ORJSONRenderer.media_type
        return response


class ChainView(APIView):
    """One expiry as traders read it: per strike, the call and the put side by side."""

    @extend_schema(
        operation_id="chain_retrieve",
        parameters=[_ASSET, serializers.ChainQuerySerializer],
        responses={200: serializers.ChainTableSerializer, **_ASSET_ERRORS},
    )
    def get(self, request: Request, asset: str) -> Response:
        symbol = served_asset(symbol=asset)
        query = validated_query(request, serializers.ChainQuerySerializer)
        return Response(chain_table(asset=symbol, expiry=query.get("expiry"), settle=query.get("settle")))


class ExpiriesView(APIView):
    """The asset's expiries in delivery order, with contract counts per settle coin."""

    @extend_schema(
        operation_id="expiries_list",
        parameters=[_ASSET],
        responses={200: serializers.ExpiryListSerializer, **_ASSET_ERRORS},
    )
    def get(self, request: Request, asset: str) -> Response:
        return Response(expiry_list(asset=served_asset(symbol=asset)))


class StrikesView(APIView):
    """The strikes of one expiry in numeric order (USDT and USDC contracts together)."""

    @extend_schema(
        operation_id="strikes_list",
        parameters=[_ASSET, serializers.StrikesQuerySerializer],
        responses={200: serializers.StrikeListSerializer, **_ASSET_ERRORS},
    )
    def get(self, request: Request, asset: str) -> Response:
        symbol = served_asset(symbol=asset)
        query = validated_query(request, serializers.StrikesQuerySerializer)
        return Response(strike_list(asset=symbol, expiry=query["expiry"]))


class SummaryView(APIView):
    """Counts, open interest, volume and put/call ratios, and per expiry the ATM strike and its mark IV."""

    @extend_schema(
        operation_id="summary_retrieve",
        parameters=[_ASSET, serializers.SummaryQuerySerializer],
        responses={200: serializers.SummarySerializer, **_ASSET_ERRORS},
    )
    def get(self, request: Request, asset: str) -> Response:
        symbol = served_asset(symbol=asset)
        query = validated_query(request, serializers.SummaryQuerySerializer)
        return Response(chain_summary(asset=symbol, settle=query.get("settle")))


_EXPIRY = OpenApiParameter(
    "expiry",
    str,
    OpenApiParameter.PATH,
    description="A listed expiry (see /api/expiries/{asset}/): Bybit code (26DEC25) or ISO date (2025-12-26).",
)


class AssetAnalyticsView(APIView):
    """The asset's analytics, as its feed computes them once a second: per expiry ATM IV, 25- and 10-delta risk
    reversal and butterfly, expected move, positioning, max pain and gamma exposure; the ATM term structure with
    constant maturities; totals per expiry. Formulas: docs/analytics.md."""

    @extend_schema(
        operation_id="analytics_retrieve",
        parameters=[_ASSET, serializers.AnalyticsQuerySerializer],
        responses={200: serializers.AssetAnalyticsPageSerializer, **_ASSET_ERRORS},
    )
    def get(self, request: Request, asset: str) -> Response:
        symbol = served_asset(symbol=asset)
        query = validated_query(request, serializers.AnalyticsQuerySerializer)
        return Response(asset_analytics_page(asset=symbol, settle=query.get("settle")))


class ExpiryAnalyticsView(APIView):
    """One expiry's analytics with its series by strike: open interest and volume, calls against puts, and gamma
    exposure with the call wall, the put wall and the gamma flip. Formulas: docs/analytics.md."""

    @extend_schema(
        operation_id="analytics_expiry_retrieve",
        parameters=[_ASSET, _EXPIRY, serializers.AnalyticsQuerySerializer],
        responses={200: serializers.ExpiryAnalyticsPageSerializer, **_ASSET_ERRORS},
    )
    def get(self, request: Request, asset: str, expiry: str) -> Response:
        symbol = served_asset(symbol=asset)
        query = validated_query(request, serializers.AnalyticsQuerySerializer)
        try:
            code = serializers.parse_expiry(expiry)
        except ValueError as exc:
            raise ValidationError({"expiry": [str(exc)]}) from None
        return Response(expiry_analytics_page(asset=symbol, expiry=code, settle=query.get("settle")))


class StatsView(APIView):
    """Per configured asset its contract count and feed figures; Redis memory; uptimes."""

    @extend_schema(
        operation_id="stats_retrieve",
        responses={200: serializers.StatsSerializer, (503, "application/json"): _REDIS_DOWN},
    )
    def get(self, request: Request) -> Response:
        return Response(site_stats())


@extend_schema(
    operation_id="health_retrieve",
    responses={200: serializers.HealthSerializer, 503: serializers.HealthSerializer},
)
@api_view(["GET"])
@permission_classes([AllowAny])
@throttle_classes([])
def health(request: Request) -> Response:
    """200 when Redis and the database answer and every enabled asset's feed is fresh, else 503 with the reasons."""
    report = health_report()
    code = status.HTTP_200_OK if report.healthy else status.HTTP_503_SERVICE_UNAVAILABLE
    return Response({"healthy": report.healthy, "problems": report.problems, "feeds": report.feeds}, status=code)


@extend_schema(operation_id="health_live_retrieve", responses={200: serializers.LivenessSerializer})
@api_view(["GET"])
@permission_classes([AllowAny])
@throttle_classes([])
def health_live(request: Request) -> Response:
    """200 whenever this web process answers: it asks nothing of Redis, the database or the feeds."""
    return Response({"alive": True})


@extend_schema(
    operation_id="health_ready_retrieve",
    responses={200: serializers.ReadinessSerializer, 503: serializers.ReadinessSerializer},
)
@api_view(["GET"])
@permission_classes([AllowAny])
@throttle_classes([])
def health_ready(request: Request) -> Response:
    """200 when this process can serve data (Redis and the database answer), whatever the feeds' state; else 503."""
    problems = readiness_problems()
    code = status.HTTP_503_SERVICE_UNAVAILABLE if problems else status.HTTP_200_OK
    return Response({"ready": not problems, "problems": problems}, status=code)
