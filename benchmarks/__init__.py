"""Load-test client and benchmark scripts; they talk to a server only over HTTP and WebRTC."""
