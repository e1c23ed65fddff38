"""seidr: autonomous program synthesis with large language models (Synthesize, Execute, Instruct, Debug, Rank)."""

__version__ = "0.1.0"
