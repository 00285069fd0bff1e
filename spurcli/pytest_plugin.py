"""pytest plugin: the ``spur_cluster`` fixture (filled in with the local-cluster tool)."""
