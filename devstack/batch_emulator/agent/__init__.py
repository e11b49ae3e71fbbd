"""The node agent: boots nodes, runs task attempts and job preparation/release tasks, reports to the model."""
