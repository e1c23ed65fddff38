"""What seidr says to the LLM at each step (draft, explain, repair), per language."""
