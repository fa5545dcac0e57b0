"""The bundled demo policy (a smoke test, not a trained model) and the script that makes it."""
