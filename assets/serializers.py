from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from assets.models import Asset, symbol_validator


class SymbolField(serializers.CharField):
    """A coin symbol in any case, validated upper-case as the model stores it.

    Only a JSON string: DRF's ``CharField`` turns a number into text, so ``{"symbol": 123}`` became asset "123".
    """

    default_error_messages = {"invalid": 'An asset symbol is a JSON string, such as "BTC".'}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data).upper()


class AssetSerializer(serializers.ModelSerializer):
    """An asset as read and updated; its symbol is fixed once created."""

    class Meta:
        model = Asset
        fields = ["symbol", "enabled", "display_name", "display_order", "label", "created_at", "updated_at"]
        read_only_fields = ["symbol", "label", "created_at", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        requested = self.initial_data.get("symbol") if hasattr(self.initial_data, "get") else None
        # Its own symbol may be sent back (a PUT of what was read); anything else, a number too, is not it.
        if (
            self.instance is not None
            and requested is not None
            and (not isinstance(requested, str) or requested.strip().upper() != self.instance.symbol)
        ):
            raise serializers.ValidationError({"symbol": "An asset's symbol cannot change; create another asset."})
        return attrs


class AssetCreateSerializer(AssetSerializer):
    symbol = SymbolField(
        max_length=10,
        help_text="Bybit base coin, 2 to 10 letters or digits, any case (stored upper-case).",
        validators=[
            symbol_validator,
            UniqueValidator(queryset=Asset.objects.all(), message="An asset with this symbol already exists."),
        ],
    )

    class Meta(AssetSerializer.Meta):
        read_only_fields = ["label", "created_at", "updated_at"]


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
