"""The notifier: decisions told to submitters on their own channel."""
