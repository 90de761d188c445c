"""The faces: the headless command line."""
