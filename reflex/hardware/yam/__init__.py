"""``hardware.kind: yam_bimanual``: two I2RT YAM arms, one CAN bus each, Damiao motors in MIT mode."""
