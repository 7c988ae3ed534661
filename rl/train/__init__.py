"""Training: one mesh, one jitted data-parallel step, one loop for every method."""
