"""On-device federated learning: the agent adapts a small head over its model's embeddings on
labels no human gives (a barcode read confirmed by the cart's weight step) and sends only the head
weights, a sample count and metrics to a Flower server. numpy only: no torch on a device."""
