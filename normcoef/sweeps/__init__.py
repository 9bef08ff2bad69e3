"""Hydra sweep machinery: callbacks and sweepers that make multiruns trustworthy."""
