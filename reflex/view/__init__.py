"""``reflex connect --view``: the session streamed live to a Rerun viewer."""
