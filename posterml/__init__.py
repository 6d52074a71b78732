"""posterml: movie poster genre classification."""
