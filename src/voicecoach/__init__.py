"""voicecoach: a real-time voice coach over the OpenAI Realtime API (WebRTC)."""

__version__ = "0.1.0"
