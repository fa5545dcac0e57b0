"""``hardware.kind: sim``: a simulated YAM bimanual robot for demos and CI."""
