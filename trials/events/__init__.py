"""Adverse events, disposition and intercurrent events, and emergency unblinding."""
