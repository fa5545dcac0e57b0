"""A remote target = a transport (moves bytes) x a wire protocol (what the bytes mean)."""
