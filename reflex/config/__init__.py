"""The session config: one pydantic model for a whole ``robot.yaml``."""
