"""Drivers: one module per way of getting a machine, loaded through the ``provision.drivers`` entry points."""
