"""The trader: per-model pipeline (``runner``), restart safety (``state``), NATS wiring
(``service``). See docs/trader.md."""
