"""Charts: what Redis holds turned into series (pure), drawn off the event loop, cached briefly."""
