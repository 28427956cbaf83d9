"""Network transport: HTTP signaling (aiohttp) and the WebRTC peer connection (aiortc)."""
