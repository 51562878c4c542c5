"""Database lock per trial: once locked, no entry or change of the trial's data by any path."""
