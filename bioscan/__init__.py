"""BIOSCAN datasets: the BIOSCAN-5M metadata reader, split names, image layout, prepare and
sample generator, and the ``bioscan-5m`` dataset plugin."""
