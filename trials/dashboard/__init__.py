"""The trial dashboard: enrolment, randomization, data completeness and safety at a glance."""
