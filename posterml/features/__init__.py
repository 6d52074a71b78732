"""posterml.features"""
