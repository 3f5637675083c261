__version__ = "0.0.1"

from .model import load_model, StillFrames   # `stillframes.load_model()`: the shipped in-betweener (chapter 03a)
