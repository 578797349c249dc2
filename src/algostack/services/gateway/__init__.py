"""The execution gateway (``algostack gateway``): one per broker account, the only process
that holds broker keys. ``service.py`` nets and attributes, ``venue.py`` is the broker seam
(``alpaca_venue.py`` the real one), ``state.py`` the restart state. docs/gateway.md."""
