"""Where results go as they happen: the run folder's JSON files (and later W&B, git)."""
