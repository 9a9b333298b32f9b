"""One module per `jaxlt` sub-command; each exposes `main(argv) -> int`."""
