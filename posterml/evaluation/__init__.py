"""posterml.evaluation"""
