"""Memory tracker (to come)."""
