"""intake-web: the public web form and JSON API of the government portal."""
