"""The bridge: anchors consortium rounds on the public chain, exactly once."""
