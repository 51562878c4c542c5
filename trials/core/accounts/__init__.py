"""Accounts: users, sites, trials, role grants, API tokens, sign-in."""
