"""Networks reproduced from the five papers compared in docs/papers.md (one module per design)."""
