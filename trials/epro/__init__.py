"""Participant self-report (ePRO): one-time, expiring links to a due questionnaire."""
