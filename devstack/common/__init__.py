"""Leaf helpers of the offline twin: state paths, local keys, the env file, process checks, image copies, registry reads."""
