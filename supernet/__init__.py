"""torch: elastic conv and attention blocks, fake quantization, the weight-sharing Supernet,
its training loop (sandwich rule + in-place distillation), BN recalibration, subnet extraction,
export, and data loaders."""
