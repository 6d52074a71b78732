"""posterml.plots"""
