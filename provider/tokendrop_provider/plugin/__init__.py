"""Everything protocol-level: gRPC server, handshake, msgpack/cty values, schema to protobuf.
Resources never import from here."""
