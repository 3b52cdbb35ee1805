"""Start with the three coins Bybit lists options for, all enabled."""

from django.db import migrations

SEED = [("BTC", "Bitcoin", 10), ("ETH", "Ethereum", 20), ("SOL", "Solana", 30)]


def seed(apps, schema_editor):
    Asset = apps.get_model("assets", "Asset")
    for symbol, name, order in SEED:
        Asset.objects.get_or_create(symbol=symbol, defaults={"display_name": name, "display_order": order})


def unseed(apps, schema_editor):
    Asset = apps.get_model("assets", "Asset")
    Asset.objects.filter(symbol__in=[symbol for symbol, _, _ in SEED]).delete()


class Migration(migrations.Migration):
    dependencies = [("assets", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
