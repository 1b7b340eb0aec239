"""Training (needs the ``train`` extra: TensorFlow and Keras 3).

Importing this package is light; TensorFlow loads when a model is built or trained.
"""

# Names registered in edge_emotion.train.models (kept here so `--help` needs no TensorFlow;
# a test checks the two agree).
MODEL_NAMES = ("edge_cnn", "cnn", "alexnet", "alexnet48", "resnet50", "densenet121")
