"""`python -m llm_agent`: the same as the `llm-agent` command."""

from .cli import main

main()
