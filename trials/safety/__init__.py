"""Safety events (item 9, deterioration), their follow-up and escalation, and notifications."""
