"""intake-hotline: the TV hotline (Twilio voice calls, the operators' console, call-centre transcripts)."""
