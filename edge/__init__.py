"""Edge runtime: transport -> decode -> filter -> segment -> infer -> events. Torch-free."""
