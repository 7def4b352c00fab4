"""Networks reproduced from the papers compared in issue 6 (one module per design)."""
