"""``/api/assets/``: anyone reads; staff create, update, delete and toggle, as their admin permissions allow,
through ``assets.services``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import BaseParser
from rest_framework.permissions import SAFE_METHODS, DjangoModelPermissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from assets.models import Asset, symbol_validator
from assets.serializers import AssetCreateSerializer, AssetSerializer, ErrorSerializer, TokenSerializer
from assets.services import asset_create, asset_delete, asset_toggle, asset_update
from optionsite.login_throttle import LoginFailureThrottle
from optionsite.throttling import AnonRedisRateThrottle

if TYPE_CHECKING:
    from rest_framework.permissions import _SupportsHasPermission  # what the stubs' get_permissions returns

_ERROR = {"application/json": ErrorSerializer}
_BAD = OpenApiResponse(description="A field is malformed: {field: [reason, ...]}.")
_FORBIDDEN = OpenApiResponse(
    ErrorSerializer, description="Only staff holding the admin's permission (add, change, delete) may change assets."
)
_UNKNOWN = OpenApiResponse(ErrorSerializer, description="No such asset.")
_TOO_MANY_FAILURES = OpenApiResponse(
    ErrorSerializer,
    description="Too many failed logins from this client or for this username (LOGIN_FAILURE_LIMIT within "
    "LOGIN_FAILURE_WINDOW), or too many requests (API_ANON_RATE); retry after Retry-After seconds.",
)


class StaffWithAssetPermissions(DjangoModelPermissions):
    """Anyone reads; a change needs a staff user who holds the permission the admin asks for it: ``add`` to
    create, ``change`` to update, ``delete`` to delete. ``is_staff`` alone let a user the admin refuses
    change every asset here."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return bool(request.user and request.user.is_staff) and super().has_permission(request, view)


class StaffMayChangeAssets(StaffWithAssetPermissions):
    """A toggle is a POST, yet it changes an asset: ``change``, as the admin's enable/disable actions ask."""

    perms_map = {**StaffWithAssetPermissions.perms_map, "POST": StaffWithAssetPermissions.perms_map["PATCH"]}


@extend_schema_view(
    list=extend_schema(responses={200: AssetSerializer(many=True)}),
    create=extend_schema(request=AssetCreateSerializer, responses={201: AssetSerializer, 400: _BAD, 403: _FORBIDDEN}),
    retrieve=extend_schema(responses={200: AssetSerializer, 404: _UNKNOWN}),
    update=extend_schema(responses={200: AssetSerializer, 400: _BAD, 403: _FORBIDDEN, 404: _UNKNOWN}),
    partial_update=extend_schema(responses={200: AssetSerializer, 400: _BAD, 403: _FORBIDDEN, 404: _UNKNOWN}),
    destroy=extend_schema(responses={204: OpenApiResponse(description="Deleted."), 403: _FORBIDDEN, 404: _UNKNOWN}),
)
class AssetViewSet(viewsets.ModelViewSet):
    """The assets the feed follows. Symbols are case-insensitive in URLs and fixed once created."""

    queryset = Asset.objects.all()
    serializer_class = AssetSerializer
    permission_classes = [StaffWithAssetPermissions]
    lookup_field = "symbol"

    def get_permissions(self) -> Sequence[_SupportsHasPermission]:
        # Here, not in @action(permission_classes=...): assets/urls.py maps the routes without a router,
        # which is what would apply the action's own.
        if self.action == "toggle":
            return [StaffMayChangeAssets()]
        return super().get_permissions()

    def get_serializer_class(self) -> type[BaseSerializer]:
        return AssetCreateSerializer if self.action == "create" else AssetSerializer

    def get_object(self) -> Asset:
        symbol = str(self.kwargs["symbol"]).strip().upper()
        # Checked before the query: PostgreSQL rejects some bytes (NUL) that a URL may carry.
        try:
            symbol_validator(symbol)
        except ValidationError:
            raise NotFound(f"unknown asset {symbol}") from None
        self.kwargs["symbol"] = symbol
        return super().get_object()

    def perform_create(self, serializer: BaseSerializer) -> None:
        serializer.instance = asset_create(**serializer.validated_data)

    def perform_update(self, serializer: BaseSerializer) -> None:
        serializer.instance = asset_update(asset=cast(Asset, serializer.instance), **serializer.validated_data)

    def perform_destroy(self, instance: Asset) -> None:
        asset_delete(asset=instance)

    @extend_schema(request=None, responses={200: AssetSerializer, 403: _FORBIDDEN, 404: _UNKNOWN})
    @action(detail=True, methods=["post"])
    def toggle(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Enable the asset if it is disabled, disable it if it is enabled."""
        return Response(AssetSerializer(asset_toggle(asset=self.get_object())).data)


class TokenView(ObtainAuthToken):
    """A user's API token for scripts, from their username and password (``Authorization: Token <key>``)."""

    # ObtainAuthToken has no throttle at all; this route gets the API's and the failed-login one. It lists
    # DRF's JSONParser, which recursed into a 500 on a body nested 100,000 deep: the API's parsers instead.
    throttle_classes = [AnonRedisRateThrottle, LoginFailureThrottle]
    parser_classes = cast(Sequence[type[BaseParser]], api_settings.DEFAULT_PARSER_CLASSES)  # classes once loaded

    @extend_schema(request=AuthTokenSerializer, responses={200: TokenSerializer, 400: _BAD, 429: _TOO_MANY_FAILURES})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)
