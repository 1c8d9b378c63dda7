"""The papers' experiments (Privacy-Phys, PulseEdit, PhysioLatent): the runner of their grids, the
tables computed from its records, and their figures. The runnable flagfiles are in experiments/."""
