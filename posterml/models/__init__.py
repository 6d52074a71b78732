"""posterml.models"""
