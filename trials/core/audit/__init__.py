"""The audit trail: append-only, hash-chained, written by one mechanism for every audited model."""
