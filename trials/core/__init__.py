"""The kernel every package may use: database, configuration, accounts, audit trail, errors."""
