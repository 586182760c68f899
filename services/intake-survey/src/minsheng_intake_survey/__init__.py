"""intake-survey: door-to-door visits and symposium records, entered one by one or imported from survey sheets."""
