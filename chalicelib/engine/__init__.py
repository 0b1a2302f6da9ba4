"""The coordinator: pure workflow semantics behind the ports in chalicelib.engine.ports."""
