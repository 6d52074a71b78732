"""posterml.data"""
