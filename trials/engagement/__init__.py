"""Engagement with the digital therapy: sessions, minutes and modules completed per participant and day."""
