"""tcplab: make TCP's connection lifecycle visible and checkable."""

__version__ = "0.1.0"
