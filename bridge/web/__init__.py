"""The HTTP layer: parses requests, calls services, maps errors to statuses."""
