"""`make bench`: the pipeline measured against the raw ceilings of the parts underneath, side by side in one run."""
