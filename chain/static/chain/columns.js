// The quote columns of both views, and which of them the user shows (remembered by the browser).
import * as format from "./format.js";

// In the chain, puts read left to right in this order; calls mirror the outer ones, so that both
// sides read bid → ask and the greeks sit on the outside (as on Deribit).
export const QUOTE_FIELDS = [
  { field: "bid_size", label: "Bid size", short: "Size", format: format.amount },
  { field: "bid_iv", label: "Bid IV", short: "IV", format: format.iv },
  { field: "bid_price", label: "Bid", format: format.price },
  { field: "mark_price", label: "Mark", format: format.price },
  { field: "mark_iv", label: "Mark IV", short: "Mark IV", format: format.iv },
  { field: "ask_price", label: "Ask", format: format.price },
  { field: "ask_iv", label: "Ask IV", short: "IV", format: format.iv },
  { field: "ask_size", label: "Ask size", short: "Size", format: format.amount },
  { field: "last_price", label: "Last", format: format.price },
  { field: "delta", label: "Delta", short: "Δ", format: format.delta },
  { field: "gamma", label: "Gamma", short: "Γ", format: format.sig },
  { field: "theta", label: "Theta", short: "Θ", format: format.sig },
  { field: "vega", label: "Vega", short: "Vega", format: format.sig },
  { field: "open_interest", label: "Open interest", short: "OI", format: format.amount },
  { field: "volume_24h", label: "Volume 24h", short: "Vol 24h", format: format.amount },
  // The contract's own measures, worked out by the ingest from its row (docs/analytics.md, "Per contract").
  { field: "moneyness", label: "Moneyness K/F", short: "K/F", format: format.moneyness },
  { field: "itm_probability", label: "P(ITM), risk-neutral", short: "P(ITM)", format: format.percent },
  { field: "spread", label: "Spread (ask − bid)", short: "Spread", format: format.price },
  { field: "iv_spread", label: "IV spread, vol points", short: "IV spr", format: format.iv },
];
export const CORE_COUNT = 8; // bid size … ask size
export const BY_FIELD = new Map(QUOTE_FIELDS.map((column) => [column.field, column]));

// The flat view's leading columns, before the quote columns.
export const IDENTITY_FIELDS = [
  { field: "symbol", label: "Symbol", format: String },
  { field: "expiry", label: "Expiry", format: String },
  { field: "strike", label: "Strike", format: format.strike },
  { field: "type", label: "Type", format: String },
  { field: "settle", label: "Settle", format: String },
];

const STORAGE_KEY = "optionsite.chain.columns";
// Hidden unless chosen: with them the chain would not fit beside the smile at 1600 px.
const DEFAULT_HIDDEN = ["last_price", "gamma", "theta", "vega", "volume_24h", "moneyness", "itm_probability", "spread", "iv_spread"];
// A choice saved as a bare list of hidden columns was made before these were offered.
const OFFERED_SINCE_THE_LIST = new Set(["moneyness", "itm_probability", "spread", "iv_spread"]);

// The user's choice, with every column it was not made among (added since) at its default.
export function loadHidden() {
  try {
    let stored = JSON.parse(localStorage.getItem(STORAGE_KEY));
    if (Array.isArray(stored)) {
      stored = { hidden: stored, offered: QUOTE_FIELDS.map(({ field }) => field).filter((field) => !OFFERED_SINCE_THE_LIST.has(field)) };
    }
    if (stored && Array.isArray(stored.hidden) && Array.isArray(stored.offered)) {
      const hidden = new Set(stored.hidden.filter((field) => BY_FIELD.has(field)));
      for (const field of DEFAULT_HIDDEN) if (!stored.offered.includes(field)) hidden.add(field);
      return hidden;
    }
  } catch {
    // A corrupt or unavailable storage: the defaults.
  }
  return new Set(DEFAULT_HIDDEN);
}

export function saveHidden(hidden) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ hidden: [...hidden], offered: QUOTE_FIELDS.map(({ field }) => field) }));
  } catch {
    // Private mode: the choice lasts for the page only.
  }
}

// Hidden columns are one generated stylesheet, so that a choice never touches the table's cells.
export function applyHidden(hidden, styleElement) {
  styleElement.textContent = [...hidden].map((field) => `.f-${field}{display:none}`).join("\n");
}

export function buildMenu(container, hidden, onChange) {
  container.replaceChildren(
    ...QUOTE_FIELDS.map(({ field, label }) => {
      const item = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = field;
      box.checked = !hidden.has(field);
      box.addEventListener("change", () => {
        if (box.checked) hidden.delete(field);
        else hidden.add(field);
        onChange(hidden);
      });
      item.append(box, ` ${label}`);
      return item;
    }),
  );
}
