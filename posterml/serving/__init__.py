"""posterml.serving"""
