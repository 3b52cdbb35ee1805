"""Bybit option symbols: parsing and formatting.

Two forms are live at once (reference §5):

* USDT-settled: ``BTC-26DEC25-65000-C-USDT``
* USDC-settled, the classic form with no suffix: ``ETH-28FEB25-2800-C``

The day is not zero-padded (``BTC-2SEP25-...``), strikes may be decimal
(``XRP-30OCT26-0.4-P-USDT``), and delivery is at 08:00 UTC on the expiry date. A USDT and
a USDC contract with the same expiry, strike and type are different contracts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Literal

OptionType = Literal["call", "put"]
SettleCoin = Literal["USDT", "USDC"]

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DELIVERY_TIME = time(8, 0, tzinfo=UTC)

_SYMBOL = re.compile(
    r"^(?P<base>[A-Z0-9]{2,10})-(?P<day>\d{1,2})(?P<month>[A-Z]{3})(?P<year>\d{2})"
    r"-(?P<strike>\d+(?:\.\d+)?)-(?P<type>[CP])(?:-(?P<settle>USDT))?$"
)
_EXPIRY_CODE = re.compile(r"^(?P<day>\d{1,2})(?P<month>[A-Z]{3})(?P<year>\d{2})$")


class SymbolError(ValueError):
    """Not a Bybit option symbol (or expiry code); the message says why."""


@dataclass(frozen=True, slots=True)
class OptionContract:
    symbol: str
    base: str
    expiry: datetime
    strike: Decimal
    option_type: OptionType
    settle: SettleCoin

    @property
    def expiry_code(self) -> str:
        return format_expiry_code(self.expiry.date())


def parse_expiry_code(code: str) -> date:
    """``"2SEP25"`` or ``"02SEP25"`` → ``date(2025, 9, 2)``."""
    match = _EXPIRY_CODE.match(code.upper())
    if not match:
        raise SymbolError(f"{code!r} is not an expiry code like 26DEC25")
    return _expiry_date(match["day"], match["month"], match["year"], source=code)


def format_expiry_code(day: date) -> str:
    """``date(2025, 9, 2)`` → ``"2SEP25"`` (Bybit does not pad the day)."""
    return f"{day.day}{MONTHS[day.month - 1]}{day.year % 100:02d}"


def delivery_datetime(day: date) -> datetime:
    return datetime.combine(day, DELIVERY_TIME)


def parse_symbol(symbol: str) -> OptionContract:
    match = _SYMBOL.match(symbol)
    if not match:
        raise SymbolError(f"{symbol!r} is not a Bybit option symbol like BTC-26DEC25-65000-C-USDT")
    expiry_day = _expiry_date(match["day"], match["month"], match["year"], source=symbol)
    try:
        strike = Decimal(match["strike"])
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise SymbolError(f"{symbol!r} has a bad strike") from None
    if strike <= 0:
        raise SymbolError(f"{symbol!r} has a strike of zero")
    return OptionContract(
        symbol=symbol,
        base=match["base"],
        expiry=delivery_datetime(expiry_day),
        strike=strike,
        option_type="call" if match["type"] == "C" else "put",
        settle="USDT" if match["settle"] else "USDC",
    )


def format_symbol(
    *, base: str, expiry: date, strike: Decimal | int | str, option_type: OptionType, settle: SettleCoin
) -> str:
    strike_text = format_strike(Decimal(str(strike)))
    suffix = "-USDT" if settle == "USDT" else ""
    letter = "C" if option_type == "call" else "P"
    return f"{base}-{format_expiry_code(expiry)}-{strike_text}-{letter}{suffix}"


def format_strike(strike: Decimal) -> str:
    """``Decimal("65000.0")`` → ``"65000"``, ``Decimal("0.40")`` → ``"0.4"``."""
    return format(strike.normalize(), "f")


def _expiry_date(day: str, month: str, year: str, *, source: str) -> date:
    if month not in MONTHS:
        raise SymbolError(f"{source!r} has an unknown month {month!r}")
    try:
        return date(2000 + int(year), MONTHS.index(month) + 1, int(day))
    except ValueError:
        raise SymbolError(f"{source!r} names a day that does not exist") from None
