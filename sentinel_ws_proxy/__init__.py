"""sentinel-ws-proxy: a record-and-replay WebSocket proxy for debugging real-time web apps."""

__version__ = "0.2.0"
