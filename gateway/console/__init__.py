"""The agent console: a small browser front end over the agent API, and its live queue."""
