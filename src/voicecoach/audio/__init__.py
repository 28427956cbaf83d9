"""Audio: PCM maths, WAV files, sound devices and the WebRTC tracks that carry them."""
