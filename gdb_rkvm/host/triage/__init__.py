"""`rkvm triage`: boot, run, snapshot every CPU over GDB/MI, name the fault, write a report."""
