"""Assessments: PHQ-9, PHQ-8 and GAD-7 item responses, visit windows, corrections, data queries."""
