"""Wire protocols of the remote targets: how an observation is encoded and a chunk decoded."""
