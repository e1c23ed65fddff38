"""LLM backends behind one async interface, and the client that counts and limits calls."""
