"""Pure domain logic: no I/O library is imported below this package."""
