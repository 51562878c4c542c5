"""Participants: screening against the protocol's eligibility rules, consent and enrolment."""
