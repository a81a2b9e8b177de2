"""One small builder module per source dataset; each exposes `build(ctx) -> Iterator[Example | Reject]`."""
