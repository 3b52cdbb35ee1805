// Number and time formatting for the chain. Values are the ingest's rows: numbers, null = no value,
// implied volatilities as fractions (0.4896 is 48.96 %).

const formatters = new Map();

function fixed(digits) {
  let formatter = formatters.get(digits);
  if (!formatter) {
    formatter = new Intl.NumberFormat("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
    formatters.set(digits, formatter);
  }
  return formatter;
}

const signedFormatters = new Map();

// U+2212 for the minus: as wide as the plus with tabular figures, so a sign change does not shift the digits.
function signed(digits) {
  let formatter = signedFormatters.get(digits);
  if (!formatter) {
    const plain = new Intl.NumberFormat("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits, signDisplay: "exceptZero" });
    formatter = { format: (value) => plain.format(value).replace("-", "\u2212") };
    signedFormatters.set(digits, formatter);
  }
  return formatter;
}

const significant = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 3 });
const small = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 4 });

export const EMPTY = "–";

// Option prices span 0.0005 (far OTM SOL) to 20,000 (deep ITM BTC): digits follow the magnitude.
export function price(value) {
  if (value == null) return EMPTY;
  const size = Math.abs(value);
  if (size < 1) return small.format(value);
  const digits = size >= 1000 ? 0 : size >= 100 ? 1 : size >= 10 ? 2 : 3;
  return fixed(digits).format(value);
}

export function indexPrice(value) {
  if (value == null) return EMPTY;
  return fixed(Math.abs(value) >= 1000 ? 1 : Math.abs(value) >= 10 ? 2 : 4).format(value);
}

export function iv(value) {
  return value == null ? EMPTY : fixed(1).format(value * 100);
}

export function amount(value) {
  if (value == null) return EMPTY;
  return fixed(Math.abs(value) >= 100 ? 0 : 2).format(value);
}

export function delta(value) {
  return value == null ? EMPTY : fixed(3).format(value);
}

export function sig(value) {
  return value == null ? EMPTY : significant.format(value);
}

// Fractions (docs/analytics.md, "Units"): 0.0526 → "5.26 %"; a signed one → "+5.26 %", "−3.10 %".
export function percent(value, digits = 1) {
  return value == null ? EMPTY : `${fixed(digits).format(value * 100)} %`;
}

export function signedPercent(value, digits = 1) {
  return value == null ? EMPTY : `${signed(digits).format(value * 100)} %`;
}

// A difference of IVs (a risk reversal, a butterfly) in vol points: -0.031 → "−3.10".
export function volPoints(value) {
  return value == null ? EMPTY : signed(2).format(value * 100);
}

// K/F with the digits that tell neighbouring strikes apart: 0.947, 1.000, 1.053.
export function moneyness(value) {
  return value == null ? EMPTY : fixed(3).format(value);
}

export function ratio(value) {
  return value == null ? EMPTY : fixed(2).format(value);
}

export function strike(value) {
  return value == null ? EMPTY : String(value);
}

// A feed's lag, given in ms: "180 ms", "1.2 s", "16.2 s".
export function lag(ms) {
  if (ms == null) return EMPTY;
  return Math.round(ms) < 1000 ? `${Math.round(ms)} ms` : `${fixed(1).format(ms / 1000)} s`;
}

// Time left to delivery (08:00 UTC): "2d 4h", "5h 12m", "12m", "delivered".
export function timeLeft(deliveryMs, nowMs = Date.now()) {
  const minutes = Math.floor((deliveryMs - nowMs) / 60000);
  if (minutes < 0) return "delivered";
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  if (days > 0) return `${days}d ${hours}h`;
  if (hours > 0) return `${hours}h ${minutes % 60}m`;
  return `${minutes}m`;
}
