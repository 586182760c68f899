"""classifier: sorts suggestions into the campaign's categories."""
