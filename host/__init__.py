"""Host console: events -> dashboard, recorder, sessions. Torch-free."""
