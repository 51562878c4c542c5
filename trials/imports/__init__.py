"""CSV import of assessments and engagement days: validated as a whole, stored all or nothing."""
