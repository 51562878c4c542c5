"""Electronic signatures (21 CFR Part 11): re-authenticated, meaningful, bound to a content hash."""
