"""The use cases: one module each, over the ports (`jobline.ports`), never an adapter."""
