"""Training side: data, sketch styles, loss networks, the train loop, evaluation and export.

The app never imports this package; it shares only ``sketch2face.networks`` with it.
"""
