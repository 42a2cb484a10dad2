"""What the agent remembers between passes: restart holds and crash accounting."""
