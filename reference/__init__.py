"""flowgate's reference implementation of the SourceFlow-style AWS command/event bus."""
