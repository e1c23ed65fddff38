"""Running untrusted programs on many tests at once, in a sandbox."""
