"""The sans-IO TCP model (RFC 9293) behind ``tcplab sim``, ``tcplab states`` and the analyzer.

Start with ``table`` (the state set and transition table, as data), then
``tcb`` (a connection and a listener), ``host``, ``net`` and ``sim`` (the
runner).  ``observe.Observer`` infers one endpoint's state from packets for
``tcplab analyze``.  See docs/model.md (generated from this package).
"""
