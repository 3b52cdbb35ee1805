"""The chain over time: snapshots the recorder (``history.recorder``) takes from Redis every ``HISTORY_INTERVAL``.

Tables, units, indexes and where each value comes from: docs/history.md. ``asset`` is the coin's symbol as text,
not a key to ``assets.Asset``: a deleted asset keeps its history until it is pruned, and so does a delivered
contract. Every row of one snapshot carries the same ``taken_at`` (the snapshot's time on the interval's grid); the
unique constraints make recording the same time twice a no-op.
"""

from __future__ import annotations

from django.db import models

SETTLE_CHOICES = [("USDT", "USDT"), ("USDC", "USDC")]
TYPE_CHOICES = [("call", "call"), ("put", "put")]


class ExpirySnapshot(models.Model):
    """One expiry and settle coin's measures at one snapshot (analytics' ``ExpirySummary``, docs/analytics.md)."""

    asset = models.CharField(max_length=10)
    expiry = models.CharField(max_length=10)
    settle = models.CharField(max_length=4, choices=SETTLE_CHOICES)
    taken_at = models.DateTimeField()
    delivery = models.DateTimeField()
    contracts = models.PositiveIntegerField()
    forward = models.FloatField(null=True)
    index_price = models.FloatField(null=True)
    basis_annualised = models.FloatField(null=True)
    atm_iv = models.FloatField(null=True)
    rr_25d = models.FloatField(null=True)
    bf_25d = models.FloatField(null=True)
    rr_10d = models.FloatField(null=True)
    bf_10d = models.FloatField(null=True)
    straddle = models.FloatField(null=True)
    implied_move = models.FloatField(null=True)
    max_pain = models.FloatField(null=True)
    call_open_interest = models.FloatField(null=True)
    put_open_interest = models.FloatField(null=True)
    put_call_open_interest = models.FloatField(null=True)
    call_volume_24h = models.FloatField(null=True)
    put_volume_24h = models.FloatField(null=True)
    put_call_volume_24h = models.FloatField(null=True)
    net_gex = models.FloatField(null=True)

    class Meta:
        constraints = [
            # One row per expiry and snapshot; also the index of "this expiry's measures over time" and of the
            # snapshot nearest a time.
            models.UniqueConstraint(
                fields=["asset", "expiry", "settle", "taken_at"], name="history_expiry_once_per_snapshot"
            ),
        ]
        indexes = [models.Index(fields=["taken_at"], name="history_expiry_taken_at")]  # pruning

    def __str__(self) -> str:
        return f"{self.asset} {self.expiry}/{self.settle} at {self.taken_at:%Y-%m-%d %H:%M:%S}"


class TermSnapshot(models.Model):
    """The ATM IV at one constant maturity (7, 30, 60, 90, 180 days) of one settle coin at one snapshot."""

    asset = models.CharField(max_length=10)
    settle = models.CharField(max_length=4, choices=SETTLE_CHOICES)
    days = models.PositiveSmallIntegerField()
    taken_at = models.DateTimeField()
    atm_iv = models.FloatField()

    class Meta:
        constraints = [
            # One row per maturity and snapshot; also the index of "the 30-day ATM IV over time" (and its rank).
            models.UniqueConstraint(
                fields=["asset", "settle", "days", "taken_at"], name="history_term_once_per_snapshot"
            ),
        ]
        indexes = [models.Index(fields=["taken_at"], name="history_term_taken_at")]  # pruning

    def __str__(self) -> str:
        return f"{self.asset} {self.days} d/{self.settle} at {self.taken_at:%Y-%m-%d %H:%M:%S}"


class ContractSnapshot(models.Model):
    """One contract's state at one snapshot, as its chain row in Redis held it (docs/redis.md)."""

    asset = models.CharField(max_length=10)
    symbol = models.CharField(max_length=40)
    expiry = models.CharField(max_length=10)
    settle = models.CharField(max_length=4, choices=SETTLE_CHOICES)
    strike = models.FloatField()
    type = models.CharField(max_length=4, choices=TYPE_CHOICES)
    taken_at = models.DateTimeField()
    mark_price = models.FloatField(null=True)
    mark_iv = models.FloatField(null=True)
    bid_price = models.FloatField(null=True)
    bid_iv = models.FloatField(null=True)
    ask_price = models.FloatField(null=True)
    ask_iv = models.FloatField(null=True)
    open_interest = models.FloatField(null=True)
    volume_24h = models.FloatField(null=True)
    delta = models.FloatField(null=True)
    gamma = models.FloatField(null=True)
    vega = models.FloatField(null=True)
    theta = models.FloatField(null=True)
    underlying_price = models.FloatField(null=True)

    class Meta:
        constraints = [
            # One row per contract and snapshot; also the index of "this contract over time".
            models.UniqueConstraint(fields=["symbol", "taken_at"], name="history_contract_once_per_snapshot"),
        ]
        indexes = [
            # The smile of one expiry at one snapshot (taken_at, asset, expiry all equal), and pruning (a range
            # on taken_at, the index's first column): one index for both, on the table that grows fastest.
            models.Index(fields=["taken_at", "asset", "expiry"], name="history_contract_snapshot"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} at {self.taken_at:%Y-%m-%d %H:%M:%S}"
