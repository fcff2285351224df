"""From a photo to the network's input and back: framing and matting a photo, refining Gaussians
against their photos."""
