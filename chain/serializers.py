"""Query parameters (validated here, 400 with the field and the reason) and the documented response shapes.

The response serializers only describe the answers for the OpenAPI schema: the rows are
served as they come from Redis, because running ~800 rows through DRF fields would
take longer than everything else in the request together.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analytics.measures import AssetAnalytics, ExpiryAnalytics
from assets.serializers import ErrorSerializer
from chain.filters import DEFAULT_ORDERING, ORDERING_FIELDS, parse_ordering
from ingest.symbols import SymbolError, format_expiry_code, parse_expiry_code

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

IV_HELP = "Implied volatility as a fraction, as Bybit sends it: 0.4896 is 48.96 %."


def parse_expiry(text: str) -> str:
    """A Bybit expiry code (``26DEC25``, any case, day padded or not) or an ISO date → the Bybit code."""
    text = text.strip()
    if _ISO_DATE.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a date that exists") from None
        if not 2000 <= day.year <= 2099:
            raise ValueError(f"{text!r} is outside the years 2000-2099 that Bybit expiry codes cover")
        return format_expiry_code(day)
    try:
        return format_expiry_code(parse_expiry_code(text))
    except SymbolError as exc:
        raise ValueError(f"{exc}; give a Bybit expiry code like 26DEC25 or an ISO date like 2025-12-26") from None


_MONTHS = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
EXPIRY_PATTERN = (
    rf"^(0?[1-9]|[12][0-9]|3[01])({_MONTHS})[0-9]{{2}}$|^20[0-9]{{2}}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
)
_ORDERING_FIELD = f"[-+]?({'|'.join(sorted(ORDERING_FIELDS))})"
ORDERING_PATTERN = rf"^{_ORDERING_FIELD}(,{_ORDERING_FIELD})*$"


@extend_schema_field({"type": "string", "pattern": EXPIRY_PATTERN, "example": "26DEC25"})
class ExpiryField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 20)
        kwargs.setdefault("help_text", "Bybit expiry code (26DEC25) or ISO date (2025-12-26).")
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        text = super().to_internal_value(data)
        try:
            return parse_expiry(text)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class NormalisedChoiceField(serializers.ChoiceField):
    """A choice given in any case (``USDT``, ``usdt``)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            text = data.strip()
            for choice in self.choices:
                if text.lower() == str(choice).lower():
                    return choice
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "pattern": ORDERING_PATTERN, "example": "-open_interest,strike"})
class OrderingField(serializers.CharField):
    pass


def _type_field(**kwargs: Any) -> NormalisedChoiceField:
    return NormalisedChoiceField(choices=["call", "put"], help_text="call or put.", **kwargs)


def _settle_field(**kwargs: Any) -> NormalisedChoiceField:
    return NormalisedChoiceField(choices=["USDT", "USDC"], help_text="Settle coin: USDT or USDC.", **kwargs)


def _strike_field(help_text: str) -> serializers.FloatField:
    return serializers.FloatField(required=False, min_value=0, max_value=1e12, help_text=help_text)


class OptionsQuerySerializer(serializers.Serializer):
    expiry = ExpiryField(required=False)
    type = _type_field(required=False)
    settle = _settle_field(required=False)
    strike = _strike_field("Exactly this strike.")
    strike_min = _strike_field("Strikes at or above this one.")
    strike_max = _strike_field("Strikes at or below this one.")
    atm = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=1000,
        help_text="Only the N strikes each side of the at-the-money strike of each expiry and settle coin "
        "(ATM: the strike nearest the expiry's forward, Bybit's underlyingPrice); 0 keeps the ATM strike alone.",
    )
    ordering = OrderingField(
        required=False,
        max_length=500,
        help_text="Comma-separated fields, '-' for descending, nulls last, e.g. -open_interest,strike. "
        f"Fields: {', '.join(sorted(ORDERING_FIELDS))}. "
        f"Default: {','.join(name for name, _ in DEFAULT_ORDERING)}.",
    )

    def validate_ordering(self, value: str) -> tuple[tuple[str, bool], ...]:
        try:
            return parse_ordering(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        low, high, strike = attrs.get("strike_min"), attrs.get("strike_max"), attrs.get("strike")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"strike_max": f"strike_max={high:g} is below strike_min={low:g}."})
        if strike is not None and ((low is not None and strike < low) or (high is not None and strike > high)):
            raise serializers.ValidationError(
                {"strike": f"strike={strike:g} lies outside strike_min..strike_max, so nothing could match."}
            )
        return attrs


class ChainQuerySerializer(serializers.Serializer):
    expiry = ExpiryField(required=False, help_text="Bybit expiry code (26DEC25) or ISO date; default: the nearest.")
    settle = _settle_field(required=False)


class StrikesQuerySerializer(serializers.Serializer):
    expiry = ExpiryField(help_text="Bybit expiry code (26DEC25) or ISO date (2025-12-26).")


class SummaryQuerySerializer(serializers.Serializer):
    settle = _settle_field(required=False)


# --- Response shapes, for the schema ---------------------------------------------------


def _number(help_text: str = "", **kwargs: Any) -> serializers.FloatField:
    return serializers.FloatField(allow_null=True, help_text=help_text, **kwargs)


def _answer_ts() -> serializers.IntegerField:
    return serializers.IntegerField(
        help_text="When this answer was made, epoch ms (this server's clock): a row's age is (ts - row's ts) / 1000."
    )


class FeedSerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=["connecting", "live", "stale", "stopped"],
        allow_null=True,
        help_text="The feed's state; null when no feed has written anything for this asset yet.",
    )
    fresh = serializers.BooleanField(
        help_text="The feed is live, its data is at most FEED_STALE_AFTER seconds old (data_age) and its lag "
        "p99 is within FEED_STALE_AFTER too. False: the data may be stale."
    )
    data_age = _number(
        "Seconds from the exchange ts of the data to now: each connection's newest ticker in Redis, from the "
        "connection furthest behind. Null before there is data."
    )
    last_message_age = _number("Seconds since the feed's last ticker arrived; null before the first.")


class OptionRowSerializer(serializers.Serializer):
    symbol = serializers.CharField(help_text="Bybit symbol, e.g. BTC-26DEC25-110000-C-USDT.")
    asset = serializers.CharField()
    expiry = serializers.CharField(help_text="Bybit expiry code, e.g. 26DEC25.")
    expiry_at = serializers.CharField(help_text="Delivery time, ISO 8601 UTC (08:00).")
    delivery_ms = serializers.IntegerField(help_text="Delivery time, epoch milliseconds.")
    strike = serializers.FloatField()
    strike_text = serializers.CharField(help_text="The strike as written in the symbol.")
    type = serializers.ChoiceField(choices=["call", "put"])
    settle = serializers.ChoiceField(choices=["USDT", "USDC"])
    bid_price = _number("Best bid; null when nobody bids.")
    bid_size = _number()
    bid_iv = _number(IV_HELP)
    ask_price = _number("Best ask; null when nobody offers.")
    ask_size = _number()
    ask_iv = _number(IV_HELP)
    crossed = serializers.BooleanField(
        help_text="True when both sides are quoted and the bid is above the ask (a crossed book); false when "
        "a side is empty or the bid is at or below the ask."
    )
    last_price = _number("Last trade price; null before the first trade.")
    mark_price = _number()
    mark_iv = _number(IV_HELP)
    index_price = _number()
    underlying_price = _number("The expiry's forward (Bybit's underlyingPrice).")
    delta = _number()
    gamma = _number()
    theta = _number()
    vega = _number()
    open_interest = _number("In contracts (base coin).")
    volume_24h = _number("24 h volume in contracts.")
    turnover_24h = _number("24 h turnover in the quote currency.")
    total_volume = _number()
    total_turnover = _number()
    high_price_24h = _number()
    low_price_24h = _number()
    change_24h = _number("24 h price change as a fraction (0.05 is +5 %).")
    predicted_delivery_price = _number("Set by Bybit only in the 30 minutes before delivery.")
    ts = serializers.IntegerField(allow_null=True, help_text="Exchange timestamp of the quote, epoch ms.")
    received_ts = serializers.IntegerField(allow_null=True, help_text="When the ingest received it, epoch ms.")
    # The contract's own measures, from this row alone (analytics.contracts; docs/analytics.md, "Per contract").
    moneyness = _number("K/F: the strike over underlying_price. Null when underlying_price is null or not positive.")
    log_moneyness = _number("ln(K/F). Null when moneyness is.")
    itm_probability = _number(
        "The risk-neutral chance of finishing in the money, a fraction: N(d2) for a call, N(-d2) for a put "
        "(Black-76, zero rate, from mark_iv, underlying_price and T = (delivery_ms - ts) / (365 * 86,400,000)). "
        "Null when moneyness is, when mark_iv is null or not positive, or when ts is null or not before delivery_ms."
    )
    spread = _number(
        "ask_price - bid_price, in the quote currency; negative for a crossed book. Null when either side is null."
    )
    iv_spread = _number(
        "ask_iv - bid_iv, a fraction like the IVs (0.02 is 2 vol points); negative for a crossed book. "
        "Null when either side is null."
    )


class OptionsPageSerializer(serializers.Serializer):
    asset = serializers.CharField()
    total = serializers.IntegerField(help_text="Number of rows in data.")
    ts = _answer_ts()
    feed = FeedSerializer()
    data = OptionRowSerializer(many=True)  # type: ignore[assignment]


class ExpiryTimesSerializer(serializers.Serializer):
    expiry_at = serializers.CharField(allow_null=True, help_text="Delivery time, ISO 8601 UTC (08:00).")
    seconds_to_expiry = _number("Seconds until delivery at 08:00 UTC; 0 once delivered.")
    years_to_expiry = _number("Seconds to expiry / (365 * 86,400): ACT/365.")


class StrikePairSerializer(serializers.Serializer):
    strike = serializers.FloatField()
    call = OptionRowSerializer(allow_null=True)
    put = OptionRowSerializer(allow_null=True)


class ChainTableSerializer(ExpiryTimesSerializer):
    asset = serializers.CharField()
    expiry = serializers.CharField(allow_null=True, help_text="Null only when the asset has no expiry listed yet.")
    settle = serializers.ChoiceField(choices=["USDT", "USDC"])
    settles = serializers.ListField(
        child=serializers.ChoiceField(choices=["USDT", "USDC"]), help_text="Settle coins listed for this expiry."
    )
    forward = _number("The expiry's forward: the latest underlyingPrice, else the index price.")
    index_price = _number()
    atm_strike = _number("The strike nearest the forward.")
    total = serializers.IntegerField(help_text="Number of strikes.")
    ts = _answer_ts()
    feed = FeedSerializer()
    data = StrikePairSerializer(many=True)  # type: ignore[assignment]


class SettleCountsSerializer(serializers.Serializer):
    USDT = serializers.IntegerField()
    USDC = serializers.IntegerField()


class ExpirySerializer(ExpiryTimesSerializer):
    expiry = serializers.CharField()
    contracts = serializers.IntegerField()
    contracts_by_settle = SettleCountsSerializer()


class ExpiryListSerializer(serializers.Serializer):
    asset = serializers.CharField()
    total = serializers.IntegerField()
    feed = FeedSerializer()
    data = ExpirySerializer(many=True)  # type: ignore[assignment]


class StrikeListSerializer(ExpiryTimesSerializer):
    asset = serializers.CharField()
    expiry = serializers.CharField()
    total = serializers.IntegerField()
    feed = FeedSerializer()
    data = serializers.ListField(  # type: ignore[assignment]
        child=serializers.FloatField(), help_text="Strikes in numeric order."
    )


class SideTotalsSerializer(serializers.Serializer):
    call = serializers.FloatField()
    put = serializers.FloatField()
    total = serializers.FloatField()


class PutCallRatioSerializer(serializers.Serializer):
    open_interest = _number("Put open interest / call open interest; null without call open interest.")
    volume_24h = _number("Put 24 h volume / call 24 h volume; null without call volume.")


class TotalsSerializer(serializers.Serializer):
    contracts = serializers.IntegerField()
    calls = serializers.IntegerField()
    puts = serializers.IntegerField()
    open_interest = SideTotalsSerializer()
    volume_24h = SideTotalsSerializer()
    put_call_ratio = PutCallRatioSerializer()


class ExpirySummarySerializer(ExpiryTimesSerializer, TotalsSerializer):
    expiry = serializers.CharField()
    forward = _number()
    atm_strike = _number()
    atm_mark_iv = _number("Mean mark IV of the contracts at the ATM strike. " + IV_HELP)


class SummarySerializer(TotalsSerializer):
    asset = serializers.CharField()
    settle = serializers.ChoiceField(choices=["USDT", "USDC"], allow_null=True)
    index_price = _number()
    contracts_by_settle = SettleCountsSerializer()
    expiries = ExpirySummarySerializer(many=True)
    feed = FeedSerializer()


class AnalyticsQuerySerializer(serializers.Serializer):
    settle = _settle_field(required=False)


class _AnalyticsAnswerSerializer(serializers.Serializer):
    asset = serializers.CharField()
    settle = serializers.ChoiceField(choices=["USDT", "USDC"], allow_null=True)
    ts = _answer_ts()
    computed_ts = serializers.IntegerField(
        allow_null=True, help_text="When the feed computed these analytics, epoch ms; null before it first did."
    )
    feed = FeedSerializer()


class AssetAnalyticsPageSerializer(_AnalyticsAnswerSerializer):
    analytics = serializers.SerializerMethodField(
        help_text="Per expiry and settle coin, the term structure per settle coin, totals per expiry (null with "
        "?settle=): docs/analytics.md. Null before the feed first published analytics."
    )

    def get_analytics(self, answer: Any) -> AssetAnalytics | None:  # for the schema: the answer is built as is
        return None


class ExpiryAnalyticsPageSerializer(_AnalyticsAnswerSerializer):
    expiry = serializers.CharField()
    analytics = serializers.SerializerMethodField(
        help_text="The expiry's measures with its by-strike series (docs/analytics.md); null before the feed first "
        "published analytics, or when the expiry has no contract of this settle coin."
    )

    def get_analytics(self, answer: Any) -> ExpiryAnalytics | None:
        return None


class FeedFiguresSerializer(FeedSerializer):
    messages_per_second = _number()
    messages_total = serializers.IntegerField(allow_null=True)
    reconnects = serializers.IntegerField(allow_null=True)
    rejected_frames = serializers.IntegerField(allow_null=True)
    connections = serializers.IntegerField(allow_null=True)
    subscribed = serializers.IntegerField(allow_null=True)
    lag_p50_ms = _number(
        "Median lag of the feed's writes, in ms: the exchange's ts of a quote → the moment it was visible in "
        "Redis, over the last 10 s of writes; null before any write, or when nothing was written in that time."
    )
    lag_p99_ms = _number(
        "99th percentile of the same lag, in ms; past FEED_STALE_AFTER (in seconds) the feed is stale."
    )
    uptime_seconds = _number("Seconds since the feed started.")


class AssetStatsSerializer(serializers.Serializer):
    asset = serializers.CharField()
    enabled = serializers.BooleanField()
    contracts = serializers.IntegerField()
    feed = FeedFiguresSerializer()


class RedisStatsSerializer(serializers.Serializer):
    version = serializers.CharField()
    used_memory = serializers.IntegerField(help_text="Bytes.")
    used_memory_human = serializers.CharField()
    maxmemory = serializers.IntegerField(help_text="Bytes; 0 means no limit.")
    uptime_seconds = serializers.IntegerField()


class WebStatsSerializer(serializers.Serializer):
    pid = serializers.IntegerField(help_text="The web process that answered (several may share the port).")
    threads = serializers.IntegerField(help_text="HTTP_THREADS: threads running requests' Django code.")
    queue_limit = serializers.IntegerField(help_text="HTTP_QUEUE_LIMIT: requests that may wait for a thread.")
    queue_timeout = serializers.FloatField(help_text="HTTP_QUEUE_TIMEOUT: seconds a request may wait for one.")
    waiting = serializers.IntegerField(help_text="Requests waiting for a thread now.")
    shed_full = serializers.IntegerField(help_text="Requests answered 503 since start: the queue was full.")
    shed_waited = serializers.IntegerField(help_text="Requests answered 503 since start: they waited too long.")
    replayed = serializers.IntegerField(
        help_text="Options answers rebuilt since start from rows kept for an unchanged chain, without running Django."
    )
    replay_missed = serializers.IntegerField(
        help_text="Requests since start that found rows kept but the chain or the assets moved (or were throttled)."
    )


class StatsSerializer(serializers.Serializer):
    uptime_seconds = serializers.FloatField(help_text="Seconds since this web process started.")
    web = WebStatsSerializer(help_text="This web process's request queue (each process counts its own).")
    redis = RedisStatsSerializer()
    assets = AssetStatsSerializer(many=True)


class LivenessSerializer(serializers.Serializer):
    alive = serializers.BooleanField(help_text="Always true: an answer at all is the news.")


class ReadinessSerializer(serializers.Serializer):
    ready = serializers.BooleanField(help_text="Redis and the database answer: data can be served.")
    problems = serializers.ListField(child=serializers.CharField(), help_text="Why it is not ready, if it is not.")


class HealthSerializer(serializers.Serializer):
    healthy = serializers.BooleanField()
    problems = serializers.ListField(child=serializers.CharField(), help_text="Why it is not healthy, if it is not.")
    feeds = serializers.DictField(child=FeedSerializer(), help_text="Per enabled asset.")


class AssetDisabledSerializer(ErrorSerializer):
    asset = serializers.CharField()
    enabled = serializers.BooleanField()
