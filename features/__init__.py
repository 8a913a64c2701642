"""Records in, one row per person out: feature building, the LTC list and cohort segments."""
