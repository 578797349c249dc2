"""The desk's Streamlit dashboard: live prices, per-model state, fleet health, kill switch.

``state`` aggregates events into view models (pure), ``journals`` reads the day's journals
from the bucket, ``feed`` fills the state from NATS in a background thread, ``app`` is the
Streamlit script and ``auth`` its optional password gate.
"""
