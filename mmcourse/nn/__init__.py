"""The networks: from-scratch layers, pretrained encoders, fusion operators, the
encoders + fusion + head model, sequence decoders, the cross-modal objectives and the
fine-tuning strategies."""
