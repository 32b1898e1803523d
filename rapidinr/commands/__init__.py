"""One module per `rapidinr` verb, each with ``add(subparsers)`` that registers it."""
