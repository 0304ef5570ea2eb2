"""The command line: parsing and printing only; the work is in ``provision.machines``."""
