from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from assets.models import Asset, symbol_validator


class SymbolField(serializers.CharField):
    """A coin symbol in any case, validated upper-case as the model stores it."""

    def to_internal_value(self, data: Any) -> str:
        return super().to_internal_value(data).upper()


class AssetSerializer(serializers.ModelSerializer):
    """An asset as read and updated; its symbol is fixed once created."""

    class Meta:
        model = Asset
        fields = ["symbol", "enabled", "display_name", "display_order", "label", "created_at", "updated_at"]
        read_only_fields = ["symbol", "label", "created_at", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        requested = self.initial_data.get("symbol") if hasattr(self.initial_data, "get") else None
        if (
            self.instance is not None
            and isinstance(requested, str)
            and requested.strip().upper() != self.instance.symbol
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
