"""Networks that judge images: LPIPS and the face descriptor behind identity distances."""
