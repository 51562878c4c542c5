"""Submission datasets: SDTM and ADaM as SAS XPORT v5 files with CSV copies and Define-XML 2.1,
their conformance check, and `trials export` (DOMAIN.md section 5)."""
