"""store: the only writer of suggestions to MongoDB, and the staff read API."""
