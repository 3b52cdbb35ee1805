import pytest
from django.core.exceptions import ValidationError

from assets.models import Asset

pytestmark = pytest.mark.django_db


def test_it_seeds_btc_eth_and_sol_enabled() -> None:
    assert list(Asset.objects.enabled().values_list("symbol", flat=True)) == ["BTC", "ETH", "SOL"]


def test_it_stores_a_lower_case_symbol_upper_case() -> None:
    asset = Asset(symbol=" xrp ")
    asset.full_clean()
    asset.save()
    assert Asset.objects.get(pk=asset.pk).symbol == "XRP"


@pytest.mark.parametrize("symbol", ["B", "BTC-USDT", "B TC", "ABCDEFGHIJK", "", "ÉTH"])
def test_it_rejects_a_bad_symbol_with_a_clear_message(symbol: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Asset(symbol=symbol).full_clean()
    assert "symbol" in caught.value.message_dict


def test_it_rejects_a_duplicate_whatever_its_case() -> None:
    with pytest.raises(ValidationError) as caught:
        Asset(symbol="btc").full_clean()
    assert caught.value.message_dict["symbol"] == ["An asset with this symbol already exists."]


def test_it_finds_an_asset_by_a_lower_case_symbol() -> None:
    assert Asset.objects.get(symbol="eth").symbol == "ETH"
