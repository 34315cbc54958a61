"""Network building blocks shared by several methods (CBAM, Coordinate Attention, ...)."""
