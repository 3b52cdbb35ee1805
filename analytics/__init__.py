"""An asset's option analytics: the measures (``analytics.measures``, pure functions of the chain's rows) and
their publishing by the feed (``analytics.publisher``). Formulas and conventions: docs/analytics.md."""
