"""The work: starting generations, tracking them, delivering results."""
