"""Model versions: loading model files safely (skops with trusted types, prediction tables) and predicting."""
