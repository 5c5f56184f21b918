"""The realtime service: WebSocket channels, presence and resumable delivery (``GET /ws``)."""
